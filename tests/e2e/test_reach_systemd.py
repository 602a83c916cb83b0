"""An exposed vLLM service as a systemd unit (a pod whose PID 1 is systemd): its API key lives
only in the unit's 0600 EnvironmentFile (as VLLM_API_KEY), never in the unit file or the
server's command line; clients need it, and gpumod's own sleep and wake calls send it."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from e2e_helpers import Gpumod, http_status, write_sdpod_specs

pytestmark = pytest.mark.e2e

SERVICES = """kind: Service
name: pub
driver: vllm
model: Qwen/Qwen3-8B
port: 8311
vram_mb: 8000
sleep: l1
expose: true
api_key: {from_env: GPUMOD_TEST_API_KEY}
---
kind: Mode
name: serve
services: [pub]
---
kind: Mode
name: quiet
services: [{name: pub, state: sleeping}]
"""


def test_exposed_unit_keeps_its_key_in_the_environment_file(systemd_pod, tmp_path: Path) -> None:
    key = "sk-" + secrets.token_hex(16)
    g = Gpumod(home=tmp_path / "home", specs=tmp_path / "specs", extra_env={"GPUMOD_TEST_API_KEY": key})
    g.specs.mkdir()
    state = tmp_path / "state"
    write_sdpod_specs(g, systemd_pod, state, "serve", SERVICES)
    try:
        res = g.run("apply", str(g.specs), "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        records = {r["name"]: r for r in g.records_in(state)}
        assert records["pub"]["supervisor"] == "systemd"
        unit_text = systemd_pod.ssh("systemctl cat gpumod-sdpod-pub.service", check=True).stdout
        assert key not in unit_text
        assert '"--host" "0.0.0.0"' in unit_text and "EnvironmentFile=" in unit_text
        env_files = list(state.glob("pods/sdpod/secrets/*"))
        assert [p.stat().st_mode & 0o077 for p in env_files] == [0]
        assert f'VLLM_API_KEY="{key}"' in env_files[0].read_text()
        main = systemd_pod.ssh("systemctl show -p MainPID --value gpumod-sdpod-pub.service", check=True).stdout.strip()
        cmdline = systemd_pod.ssh(f"tr '\\0' ' ' < /proc/{main}/cmdline", check=True).stdout
        assert "vllm" in cmdline and key not in cmdline

        url = f"http://{systemd_pod.ip}:8311"
        assert http_status(f"{url}/v1/models") == 401
        assert http_status(f"{url}/v1/models", key) == 200

        write_sdpod_specs(g, systemd_pod, state, "quiet", SERVICES)  # the sleep call needs the key (401 without it)
        res = g.run("apply", str(g.specs), "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        assert {s["service"]: s["state"] for s in g.status()["pods"]["sdpod"]["services"]} == {"pub": "sleeping"}
        write_sdpod_specs(g, systemd_pod, state, "serve", SERVICES)  # and so does the wake
        res = g.run("apply", str(g.specs), "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        assert {s["service"]: s["state"] for s in g.status()["pods"]["sdpod"]["services"]} == {"pub": "running"}
        assert all(key not in text for text in (res.stdout, res.stderr))
    finally:
        down = g.run("down", str(g.specs), "--yes")
    assert down.returncode == 0, down.stdout + down.stderr
