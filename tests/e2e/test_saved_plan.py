"""Saved plans, as a user runs them: `gpumod plan DIR --out p.json`, then `gpumod apply p.json`
runs exactly that plan — or refuses, touching nothing, when a pod or the specs changed since."""

from __future__ import annotations

import json
import os
import signal

import pytest

from e2e_helpers import Gpumod, wait_for

pytestmark = pytest.mark.e2e
POD = "sim-box"


def _records(g: Gpumod) -> dict[str, dict]:
    return {r["name"]: r for r in g.records()}


def _alive(pid: int) -> bool:
    """Alive and not a zombie (killed services stay zombies here: PID 1 does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_saved_plan_is_refused_when_a_service_was_killed_and_nothing_is_touched(gpumod: Gpumod, tmp_path) -> None:
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    gpumod.set_mode("pod.yaml", "rag")
    saved = tmp_path / "p.json"
    planned = gpumod.run("plan", str(gpumod.specs), "--out", str(saved))
    assert planned.returncode == 1, planned.stdout + planned.stderr
    assert saved.is_file() and f"gpumod apply {saved}" in planned.stdout

    before = _records(gpumod)
    victim = before["embedding-code"]["pid"]
    survivor = before["glm-code"]["pid"]
    os.kill(victim, signal.SIGKILL)  # by hand, behind gpumod's back
    wait_for(lambda: not _alive(victim), timeout=10)
    files_before = {p: p.read_bytes() for p in gpumod.home.glob("pods/*/services/*.json")}

    res = gpumod.run("apply", str(saved))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "stale" in res.stderr and "nothing was touched" in res.stderr
    assert f"embedding-code was running, pid {victim}, is now failed" in res.stderr
    assert "gpumod plan" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""  # no plan printed, no step run
    # nothing touched: the records are byte for byte the same, the other service still runs
    files_after = {p: p.read_bytes() for p in gpumod.home.glob("pods/*/services/*.json")}
    assert files_after == files_before
    assert _alive(survivor)
    assert gpumod.services(POD)["glm-code"]["state"] == "running"  # not put to sleep by the saved plan


def test_saved_plan_runs_exactly_its_steps_and_converges(gpumod: Gpumod, tmp_path) -> None:
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    gpumod.set_mode("pod.yaml", "rag")
    saved = tmp_path / "p.json"
    planned = gpumod.run("plan", str(gpumod.specs), "--out", str(saved), "-o", "json")
    assert planned.returncode == 1, planned.stderr
    steps = json.loads(planned.stdout)["pods"][POD]["steps"]
    assert json.loads(saved.read_text())["plan"]["pods"][POD]["steps"] == steps

    res = gpumod.run("apply", str(saved), "-o", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["converged"] is True and report["passes"] == 1
    ran = [(s["action"], s["service"]) for s in report["steps"]]
    assert sorted(ran) == sorted((s["action"], s["service"]) for s in steps)
    assert all(s["status"] == "ok" for s in report["steps"])

    again = gpumod.run("plan", str(gpumod.specs))
    assert again.returncode == 0, again.stdout + again.stderr  # nothing left to do
    assert gpumod.services(POD)["glm-code"]["state"] == "sleeping"


def test_saved_plan_is_refused_after_a_spec_edit(gpumod: Gpumod, tmp_path) -> None:
    saved = tmp_path / "p.json"
    assert gpumod.run("plan", str(gpumod.specs), "--out", str(saved)).returncode == 1
    gpumod.set_mode("pod.yaml", "rag")
    res = gpumod.run("apply", str(saved), "--yes")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "its specs changed since the plan was made (mode code → rag)" in res.stderr
    assert gpumod.records() == []  # nothing started

    with_pod = gpumod.run("apply", str(saved), "--pod", POD)
    assert with_pod.returncode == 2 and "carries its own pod selection" in with_pod.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "gpumod-saved-plan/1"}')
    res = gpumod.run("apply", str(broken))
    assert res.returncode == 2 and "not a readable saved plan" in res.stderr and "Traceback" not in res.stderr
