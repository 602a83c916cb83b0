"""What a service process gets from gpumod, through the real CLI on the simulated pod: an
environment without the user's shell in it, and the stop timeout it was started with.

Why end to end: the leak and the 30 s fallback were both invisible to the unit tests, because
they lived between the layers (the agent inherited the CLI's environment; the executor lost the
spec of a service that left the mode).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest
import yaml
from e2e_helpers import ROOT, Gpumod, wait_for
from testkit import free_port

pytestmark = pytest.mark.e2e

INHERITED = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR"}
TINY_SERVER = ROOT / "tests" / "agent" / "tiny_server.py"


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)


def session(leader: int) -> list[int]:
    """The live pids of a service's session (the process supervisor makes one per service)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[3]) == leader and fields[0] not in ("Z", "X"):
                pids.append(int(entry))
    return pids


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def edit_services(specs: Path, changes: dict[str, dict]) -> None:
    path = specs / "services.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        doc.update(changes.get(doc["name"], {}))
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def test_services_get_a_minimal_environment_and_only_their_own_secrets(gpumod: Gpumod, tmp_path: Path) -> None:
    token = secrets.token_hex(4)
    # glm-code asks for the user's HF_TOKEN; embedding-code for another secret; nothing else asks
    edit_services(gpumod.specs, {
        "glm-code": {"env": {"HF_TOKEN": {"from_env": "HF_TOKEN"}}},
        "embedding-code": {"env": {"EMB_KEY": {"from_env": "GPUMOD_LEAKTEST_EMB"}}},
    })
    gpumod.extra_env = {
        "HF_TOKEN": "hf_leaktest",
        "GPUMOD_LEAKTEST_RANDOM": token,
        "GPUMOD_LEAKTEST_EMB": f"emb-{token}",
        "PYTHONPATH": str(tmp_path),  # kept for the sim servers: they import gpumod as the CLI does
    }
    res = gpumod.run("apply", str(gpumod.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr

    records = {r["name"]: r for r in gpumod.records()}
    assert set(records) == {"glm-code", "embedding-code"}
    own = {"glm-code": {"HF_TOKEN": "hf_leaktest"}, "embedding-code": {"EMB_KEY": f"emb-{token}"}}
    for name, record in records.items():
        pids = session(record["pid"])
        assert record["pid"] in pids
        for pid in pids:
            env = environ(pid)
            leaked = [k for k, v in env.items() if token in v or v == "hf_leaktest"]
            assert sorted(leaked) == sorted(own[name]), f"{name} (pid {pid}) got {leaked}"
            for key, value in own[name].items():
                assert env[key] == value
            extra = set(env) - INHERITED - set(record["env"]) - set(own[name])
            assert {k for k in extra if not k.startswith("LC_")} == set(), f"{name} inherited {extra}"
            assert env["PYTHONPATH"] == str(tmp_path)
            assert env["GPUMOD_SIM_DIR"] and env["CUDA_VISIBLE_DEVICES"] == "0"
        assert "HF_TOKEN" not in record["env"] and "EMB_KEY" not in record["env"]  # secrets are not recorded


def test_a_service_ignoring_sigterm_stops_after_its_own_stop_timeout_leaving_the_mode_and_on_down(
    gpumod: Gpumod,
) -> None:
    (gpumod.specs / "services.yaml").write_text(yaml.safe_dump({
        "kind": "Service",
        "name": "stubborn",
        "driver": "command",
        "command": ["{python}", str(TINY_SERVER), "--port", "{port}", "--ignore-term"],
        "port": free_port(),
        "vram_mb": 100,
        "stop_timeout_s": 3,
    }, sort_keys=False))
    (gpumod.specs / "modes.yaml").write_text(
        "kind: Mode\nname: serve\nservices: [stubborn]\n---\nkind: Mode\nname: idle\nservices: []\n"
    )
    gpumod.set_mode("pod.yaml", "serve")

    def start() -> int:
        res = gpumod.run("apply", str(gpumod.specs), "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        return int(next(r["pid"] for r in gpumod.records() if r["name"] == "stubborn"))

    def timed(*args: str) -> float:
        began = time.monotonic()
        res = gpumod.run(*args, str(gpumod.specs), "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        return time.monotonic() - began

    pid = start()
    gpumod.set_mode("pod.yaml", "idle")
    took = timed("apply")
    assert not alive(pid)
    assert 3 <= took < 20, f"leaving the mode took {took:.1f} s (stop_timeout_s: 3; the old fallback was 30 s)"

    gpumod.set_mode("pod.yaml", "serve")
    pid = start()
    took = timed("down")
    wait_for(lambda: not alive(pid), timeout=5)
    assert 3 <= took < 20, f"down took {took:.1f} s (stop_timeout_s: 3; the old fallback was 30 s)"
    assert gpumod.records() == []
