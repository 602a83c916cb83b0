"""The acceptance path of the core loop, as a new user runs it: the real `gpumod` command against
the built-in simulated pod of `specs/` (real processes, real HTTP, the nvidia-smi stand-in)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from e2e_helpers import Gpumod, wait_for
from testkit import free_port

pytestmark = pytest.mark.e2e
POD = "sim-box"


def _alive(svc: dict) -> bool:
    return svc["state"] in ("running", "sleeping")


def test_apply_converges_then_is_idempotent(gpumod: Gpumod) -> None:
    first = gpumod.run("apply", str(gpumod.specs), "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "+ start embedding-code" in first.stdout
    assert "+ start glm-code" in first.stdout
    # the dependency starts in an earlier wave than its dependent
    assert first.stdout.index("start embedding-code") < first.stdout.index("start glm-code")

    services = gpumod.services(POD)
    assert services["embedding-code"]["state"] == "running"
    assert services["glm-code"]["state"] == "running"

    again = gpumod.run("apply", str(gpumod.specs), "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "start" not in again.stdout and "stop" not in again.stdout

    plan = gpumod.run("plan", str(gpumod.specs))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    logs = gpumod.run("logs", str(gpumod.specs), "glm-code", "-n", "5")
    assert logs.returncode == 0 and "GET /health" in logs.stdout and len(logs.stdout.splitlines()) == 5
    assert gpumod.run("logs", str(gpumod.specs), "no-such-service").returncode == 2
    plan_json = json.loads(gpumod.run("plan", str(gpumod.specs), "-o", "json").stdout)
    assert plan_json["changes"] == 0 and plan_json["pods"][POD]["fits"] is True

    # the nvidia-smi stand-in shows exactly the two allocations of the code mode
    apps = gpumod.nvidia_smi(POD, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    used = sorted(int(line.split(",")[1]) for line in apps.strip().splitlines())
    assert used == sorted([services["embedding-code"]["vram_used_mb"], services["glm-code"]["vram_used_mb"]])
    assert sum(used) > 0


def test_switch_to_rag_frees_before_it_fills(gpumod: Gpumod) -> None:
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    gpumod.set_mode("pod.yaml", "rag")

    planned = gpumod.run("plan", str(gpumod.specs), "-o", "json")
    assert planned.returncode == 1  # changes pending
    steps = json.loads(planned.stdout)["pods"][POD]["steps"]
    phases = [s["phase"] for s in steps]
    assert phases == sorted(phases, key=lambda p: 0 if p == "free" else 1), "free phase must come first"
    assert any(s["action"] == "sleep" and s["service"] == "glm-code" for s in steps)
    assert all(s["reason"] for s in steps)
    first_fill = phases.index("fill")
    assert all(s["action"] in ("stop", "sleep") for s in steps[:first_fill])

    res = gpumod.run("apply", str(gpumod.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.index("sleep") < res.stdout.index("+ start")

    services = gpumod.services(POD)
    assert services["glm-code"]["state"] == "sleeping"
    assert services["chat"]["state"] == "running"
    assert services["reranker"]["state"] == "sleeping"  # standby members start, then sleep
    assert services["hyde"]["state"] == "sleeping"
    total = int(gpumod.nvidia_smi(POD, "--query-gpu=memory.used", "--format=csv,noheader,nounits").strip())
    expected = sum(s["vram_used_mb"] for s in services.values())
    assert total == expected
    assert gpumod.run("plan", str(gpumod.specs)).returncode == 0


def test_infeasible_mode_touches_nothing(gpumod: Gpumod) -> None:
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    before = sorted((r["name"], r["pid"]) for r in gpumod.records())
    gpumod.set_mode("pod.yaml", "everything")

    res = gpumod.run("apply", str(gpumod.specs), "--yes")
    assert res.returncode == 2, res.stdout + res.stderr
    text = res.stdout + res.stderr
    assert "GPU 0" in text and "NVIDIA GeForce RTX 4090" in text
    assert "MiB over" in text
    assert "alternatives" in text.lower()
    assert "Traceback" not in text
    assert sorted((r["name"], r["pid"]) for r in gpumod.records()) == before
    assert all(os.path.exists(f"/proc/{pid}") for _, pid in before)

    sim = gpumod.run("simulate", str(gpumod.specs), "--pod", POD, "--mode", "everything")
    assert sim.returncode == 1
    assert "exceeds by" in sim.stdout and "█" in sim.stdout


def test_killed_service_is_restarted_alone(gpumod: Gpumod) -> None:
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    pids = {r["name"]: r["pid"] for r in gpumod.records()}
    os.killpg(pids["glm-code"], signal.SIGKILL)
    wait_for(lambda: gpumod.services(POD)["glm-code"]["state"] == "failed", timeout=10)

    res = gpumod.run("apply", str(gpumod.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "start glm-code" in res.stdout
    assert "embedding-code" not in res.stdout.split("Recap")[0]
    after = {r["name"]: r["pid"] for r in gpumod.records()}
    assert after["embedding-code"] == pids["embedding-code"]
    assert after["glm-code"] != pids["glm-code"]


def test_validate_reports_every_problem(gpumod: Gpumod) -> None:
    bad = gpumod.specs / "broken.yaml"
    bad.write_text(
        "kind: Service\nname: extra\ndriver: vllm\nmodel: x\nport: 7070\nvram_mb: 100\ncolour: red\n"
        "---\nkind: Mode\nname: code\nservices: [nope]\n"
    )
    res = gpumod.run("validate", str(gpumod.specs))
    assert res.returncode == 2
    assert "broken.yaml:7:" in res.stderr  # unknown key colour
    assert "broken.yaml:9:" in res.stderr or "broken.yaml:10:" in res.stderr  # duplicate mode / unknown member
    assert "Traceback" not in res.stderr
    assert gpumod.records() == []  # nothing touched


def test_watch_converges_on_edit_and_exits_cleanly(gpumod: Gpumod) -> None:
    proc = gpumod.popen("watch", str(gpumod.specs), "--interval", "30")
    try:
        wait_for(lambda: _alive(gpumod.services(POD).get("glm-code", {"state": ""})), timeout=60)
        gpumod.set_mode("pod.yaml", "blank")
        wait_for(lambda: not any(_alive(s) for s in gpumod.services(POD).values()), timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except Exception:
            proc.kill()
            raise
    assert proc.returncode == 0, out
    assert "change detected" in out


def test_down_stops_everything(gpumod: Gpumod) -> None:
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    pids = [r["pid"] for r in gpumod.records()]
    assert pids
    res = gpumod.run("down", str(gpumod.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert gpumod.records() == []
    deadline = time.monotonic() + 5
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                break
            if state in "ZX":
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"pid {pid} still alive")
    used = gpumod.nvidia_smi(POD, "--query-gpu=memory.used", "--format=csv,noheader,nounits").strip()
    assert used == "0"


def test_a_server_started_by_hand_is_left_alone_but_its_vram_counts(gpumod: Gpumod) -> None:
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0  # creates the sim pod
    sim = gpumod.home / "sim" / POD
    env = gpumod.env | {
        "GPUMOD_SIM_DIR": str(sim),
        "CUDA_VISIBLE_DEVICES": "0",
        "GPUMOD_SIM_VRAM_MB": "2000",  # what is left of the GPU in mode code
        "GPUMOD_SIM_LOAD_S": "0.1",
    }
    by_hand = subprocess.Popen(
        [sys.executable, "-m", "gpumod.sim.server", "--flavour", "plain", "--", "--port", str(free_port())],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: "2000" in gpumod.nvidia_smi(POD, "--query-compute-apps=used_memory",
                                                       "--format=csv,noheader,nounits"), timeout=15)
        plan = json.loads(gpumod.run("plan", str(gpumod.specs), "-o", "json").stdout)["pods"][POD]
        assert plan["steps"] == []  # not ours: never stopped, never pruned
        users = {u["name"]: u["mb"] for u in plan["gpus"][0]["users"]}
        assert any("other processes" in n or "foreign" in n for n in users), users
        assert sum(mb for n, mb in users.items() if "other processes" in n or "foreign" in n) == 2000
        assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
        assert by_hand.poll() is None  # still running
        sim_ = gpumod.run("simulate", str(gpumod.specs), "--pod", POD, "--add", "chat")
        assert sim_.returncode == 1 and "2000" in sim_.stdout  # the hand-started server's VRAM is counted
    finally:
        by_hand.terminate()
        by_hand.wait(timeout=10)
