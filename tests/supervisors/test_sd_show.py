"""Reading ``systemctl show`` (recorded from systemd 252): Key=Value blocks in any order."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gpumod.drivers.probes.systemd import (
    RECENT_RESTART_S,
    RESTARTS_FOR_LOOP,
    manager_usable,
    parse_show,
    unit_summary,
    units_by_id,
)

DATA = Path(__file__).with_name("data")


def recorded(name: str) -> str:
    return (DATA / name).read_text()


def shuffled(text: str, seed: int) -> str:
    """The same blocks with their lines in another order (systemd does not keep -p's order)."""
    rng = random.Random(seed)
    blocks = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        rng.shuffle(lines)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def test_three_units_with_one_not_found() -> None:
    units = units_by_id(recorded("show_three_units.txt"))
    assert sorted(units) == ["nope.service", "t1.service", "t3.service"]
    assert units["nope.service"]["LoadState"] == "not-found"
    assert units["nope.service"]["ActiveState"] == "inactive"
    assert units["t3.service"]["MainPID"] == "32624"
    assert units["t3.service"]["ControlGroup"] == "/app.slice/t3.service"
    assert units["t1.service"]["ControlGroup"] == ""


@pytest.mark.parametrize("seed", range(5))
def test_property_order_does_not_matter(seed: int) -> None:
    text = recorded("show_three_units.txt")
    assert units_by_id(shuffled(text, seed)) == units_by_id(text)


def test_values_may_hold_equal_signs_and_odd_lines_are_skipped() -> None:
    text = "Id=a.service\nEnvironment=A=b C=d\nnot a property line\nMainPID=7\n\n\n\nId=b.service\n"
    assert parse_show(text) == [
        {"Id": "a.service", "Environment": "A=b C=d", "MainPID": "7"},
        {"Id": "b.service"},
    ]
    assert parse_show("") == []


def test_running_unit() -> None:
    props = units_by_id(recorded("show_active_minimal.txt"))["t1.service"]
    s = unit_summary(props, now_monotonic_s=2532084397 / 1e6 + 12.5)
    assert s["alive"] and not s["crash_loop"]
    assert s["main_pid"] == 21351 and s["nrestarts"] == 0
    assert s["uptime_s"] == pytest.approx(12.5)
    assert s["exited_ago_s"] is None  # the property was not asked for


def test_not_found_unit_is_dead_not_crashing() -> None:
    s = unit_summary(units_by_id(recorded("show_three_units.txt"))["nope.service"], now_monotonic_s=100.0)
    assert (s["alive"], s["crash_loop"], s["load_state"], s["main_pid"]) == (False, False, "not-found", 0)
    assert s["uptime_s"] is None and s["exited_ago_s"] is None


def test_auto_restart_is_a_crash_loop() -> None:
    props = units_by_id(recorded("show_auto_restart.txt"))["crash.service"]
    s = unit_summary(props, now_monotonic_s=3210543874 / 1e6 + 0.2)
    assert (s["active_state"], s["sub_state"]) == ("activating", "auto-restart")
    assert s["crash_loop"] and not s["alive"]
    assert s["nrestarts"] == 2 and s["result"] == "exit-code"
    assert s["exited_ago_s"] == pytest.approx(0.2)


def test_failed_after_restarts_is_a_crash_loop() -> None:
    s = unit_summary(units_by_id(recorded("show_failed_start_limit.txt"))["gaveup.service"])
    assert s["crash_loop"] and not s["alive"] and s["nrestarts"] == 5


def test_one_restart_is_not_a_loop_but_repeated_recent_restarts_are() -> None:
    props = units_by_id(recorded("show_three_units.txt"))["t3.service"]  # active, NRestarts=1
    started = 3065296247 / 1e6
    once = unit_summary(props, now_monotonic_s=started + 1.0)
    assert once["alive"] and not once["crash_loop"]  # a single crash that systemd repaired
    looping = unit_summary({**props, "NRestarts": str(RESTARTS_FOR_LOOP)}, now_monotonic_s=started + 1.0)
    assert looping["crash_loop"]
    later = unit_summary({**props, "NRestarts": str(RESTARTS_FOR_LOOP)}, now_monotonic_s=started + RECENT_RESTART_S + 1)
    assert later["alive"] and not later["crash_loop"]  # it has stayed up since
    assert not unit_summary(props)["crash_loop"]  # without a clock: only what the states say


def test_failed_once_without_restarts_is_dead_but_not_a_loop() -> None:
    props = {"Id": "x.service", "ActiveState": "failed", "SubState": "failed", "MainPID": "0", "NRestarts": "0"}
    s = unit_summary(props)
    assert not s["alive"] and not s["crash_loop"]


def test_manager_state() -> None:
    assert manager_usable(parse_show(recorded("show_manager.txt"))[0])
    assert manager_usable({"Version": "255", "SystemState": "degraded"})
    assert not manager_usable({"Version": "255", "SystemState": "offline"})
    assert not manager_usable({"SystemState": "running"})
