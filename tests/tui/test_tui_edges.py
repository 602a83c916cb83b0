"""Mistyped TUI commands as a new user types them: a near miss of a command (`/swich rag`, or
`switch rag` without the slash) says which command was meant, with its arguments, and runs nothing."""

from __future__ import annotations

import pytest

from gpumod.tui.app import GpumodTui
from gpumod.tui.commands import CommandError, parse
from gpumod.tui.widgets import OutputLog


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("/swich rag", "unknown command /swich; did you mean /switch rag?"),
        ("/stauts", "unknown command /stauts; did you mean /status?"),
        ("/simulat --mode everything", "did you mean /simulate --mode everything?"),
        ("switch rag", "not a command: 'switch rag'; did you mean /switch rag?"),
    ],
)
def test_a_near_miss_names_the_command_meant(line: str, says: str) -> None:
    with pytest.raises(CommandError) as e:
        parse(line)
    assert says in str(e.value)


def test_a_word_far_from_every_command_gets_no_guess() -> None:
    with pytest.raises(CommandError) as e:
        parse("/deploy now")
    assert str(e.value) == "unknown command /deploy; ? shows the commands"


async def test_a_mistyped_switch_on_the_screen_says_what_was_meant_and_runs_nothing() -> None:
    app = GpumodTui("specs", live=False)
    async with app.run_test(size=(130, 44)) as pilot:
        await pilot.press(*"/swich rag", "enter")
        await pilot.pause()
        said = app.query_one(OutputLog).written[-1].plain
        assert "did you mean /switch rag?" in said
        assert app.pass_running is None


async def test_plan_of_an_unreachable_pod_names_it_once(tmp_path, monkeypatch) -> None:
    """`/plan` on a fleet whose SSH pods do not answer (loopback ports nobody listens on) says
    `pod workstation not observed: cannot reach ...`, not `... not observed: pod workstation: ...`."""
    import time

    from e2e_helpers import unreachable_copy

    monkeypatch.setenv("GPUMOD_HOME", str(tmp_path / "home"))
    specs = unreachable_copy("ssh-fleet", tmp_path / "fleet")
    app = GpumodTui(specs, refresh_s=60.0)
    async with app.run_test(size=(130, 44)) as pilot:
        deadline = time.monotonic() + 60
        while app.result is None and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.press(*"/pod workstation", "enter")
        await pilot.press(*"/plan", "enter")
        said: list[str] = []
        while not any("workstation not observed" in s for s in said) and time.monotonic() < deadline:
            await pilot.pause(0.1)
            said = [t.plain for t in app.query_one(OutputLog).written]
        (line,) = [s for s in said if "workstation not observed" in s]
        assert line.startswith("pod workstation not observed: ") and line.count("workstation") == 1
