"""A pod whose PID 1 is a real systemd (recipe 3B), reached over SSH with simulated GPUs:
`supervisor: auto` picks systemd, services run as units, secrets live only in a 0600
EnvironmentFile, and `down` removes the units again."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from e2e_helpers import Gpumod, write_sdpod_specs, wait_for

pytestmark = pytest.mark.e2e

SERVICES = """kind: Service
name: chat
driver: vllm
model: Qwen/Qwen3-8B
port: 8301
vram_mb: 8000
sleep: l1
env:
  HF_TOKEN: {from_env: GPUMOD_TEST_HF_TOKEN}
---
kind: Service
name: web
driver: command
port: 8302
vram_mb: 500
command: ["{python}", -m, gpumod.sim.server, --flavour, plain, --, --port, "{port}"]
depends_on: [chat]
---
kind: Mode
name: serve
services: [chat, web]
---
kind: Mode
name: quiet
services: [{name: chat, state: sleeping}]
"""


def show(pod, unit: str) -> dict[str, str]:
    res = pod.ssh(f"systemctl show -p LoadState,ActiveState,SubState,KillMode,MainPID {unit}", check=True)
    return dict(line.split("=", 1) for line in res.stdout.strip().splitlines() if "=" in line)


def test_services_run_as_systemd_units(systemd_pod, tmp_path: Path) -> None:
    token = "hf_" + secrets.token_hex(16)
    g = Gpumod(home=tmp_path / "home", specs=tmp_path / "specs", extra_env={"GPUMOD_TEST_HF_TOKEN": token})
    g.specs.mkdir()
    state = tmp_path / "state"
    write_sdpod_specs(g, systemd_pod, state, "serve", SERVICES)
    try:
        res = g.run("apply", str(g.specs), "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        assert token not in res.stdout + res.stderr
        records = {r["name"]: r for r in g.records_in(state)}
        assert records["chat"]["supervisor"] == "systemd"
        for name in ("chat", "web"):
            props = show(systemd_pod, f"gpumod-sdpod-{name}.service")
            assert props["ActiveState"] == "active" and props["SubState"] == "running", props
            assert props["KillMode"] == "control-group"
        unit_text = systemd_pod.ssh("systemctl cat gpumod-sdpod-chat.service", check=True).stdout
        assert token not in unit_text and "EnvironmentFile=" in unit_text
        env_files = list(state.glob("pods/sdpod/secrets/*"))
        assert env_files and all(p.stat().st_mode & 0o077 == 0 for p in env_files)
        assert any(token in p.read_text() for p in env_files)
        status = {s["service"]: s["state"] for s in g.status()["pods"]["sdpod"]["services"]}
        assert status == {"chat": "running", "web": "running"}
        assert g.run("plan", str(g.specs)).returncode == 0

        # a crash is repaired by systemd itself (Restart=on-failure); gpumod then has nothing to do
        main_pid = show(systemd_pod, "gpumod-sdpod-web.service")["MainPID"]
        systemd_pod.ssh(f"kill -9 {main_pid}", check=True)
        wait_for(lambda: show(systemd_pod, "gpumod-sdpod-web.service").get("MainPID") not in ("0", main_pid)
                 and show(systemd_pod, "gpumod-sdpod-web.service")["ActiveState"] == "active", timeout=30)
        wait_for(lambda: g.run("plan", str(g.specs)).returncode == 0, timeout=30)

        write_sdpod_specs(g, systemd_pod, state, "quiet", SERVICES)
        plan = json.loads(g.run("plan", str(g.specs), "-o", "json").stdout)
        assert [(s["action"], s["service"]) for s in plan["pods"]["sdpod"]["steps"]] == [
            ("stop", "web"), ("sleep", "chat")
        ] or [(s["action"], s["service"]) for s in plan["pods"]["sdpod"]["steps"]] == [
            ("sleep", "chat"), ("stop", "web")
        ]
        res = g.run("apply", str(g.specs), "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        assert show(systemd_pod, "gpumod-sdpod-web.service")["LoadState"] == "not-found"
        status = {s["service"]: s["state"] for s in g.status()["pods"]["sdpod"]["services"]}
        assert status == {"chat": "sleeping"}
    finally:
        down = g.run("down", str(g.specs), "--yes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert show(systemd_pod, "gpumod-sdpod-chat.service")["LoadState"] == "not-found"
    assert not list(state.glob("pods/sdpod/secrets/*"))
