"""Two pods behind real sshds, each in its own network namespace (its own hostname, PID namespace
and IP), with simulated GPUs on the remote side: the acceptance path of SSH fleets, run through
the real `gpumod` command."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_helpers import Gpumod, wait_for

from infra.netns import PodNetwork, kill_pod_sshd

pytestmark = pytest.mark.e2e

SERVICES = """
kind: Service
name: chat
driver: vllm
model: Qwen/Qwen3-8B
port: 8101
vram_mb: 8000
sleep: l1
env:
  HF_TOKEN: {from_env: GPUMOD_TEST_HF_TOKEN}
---
kind: Service
name: coder
driver: llamacpp
model: devstral
models_dir: /nonexistent/models
port: 8102
vram_mb: 12000
sleep: router
---
kind: Service
name: web
driver: command
port: 8103
vram_mb: 500
command: ["{python}", -m, gpumod.sim.server, --flavour, plain, --, --port, "{port}"]
---
kind: Mode
name: m1
services: [chat, web]
---
kind: Mode
name: m2
services: [coder, web, {name: chat, state: sleeping}]
"""


def pod_doc(name: str, ip: str, net: PodNetwork, state: Path, *, mode: str = "m1", load_s: float = 0.3,
            known_hosts: str | None = None, extra: str = "") -> str:
    return (
        f"kind: Pod\nname: {name}\nhost: ssh://root@{ip}:22\nmode: {mode}\nsupervisor: process\n"
        f"known_hosts: {known_hosts or net.keys.known_hosts}\nidentity_file: {net.keys.client_key}\n"
        f"python: {sys.executable}\nstate_dir: {state}\n"
        "gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]\n"
        f"sim: {{load_s: {load_s}, sleep_s: 0.1, wake_s: 0.1}}\n{extra}"
    )


@pytest.fixture
def fleet(netns_pods, tmp_path: Path):
    net = netns_pods(n=2)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "services.yaml").write_text(SERVICES)
    states = {}
    for i, pod in enumerate(net.pods):
        name = f"pod-{'ab'[i]}"
        states[name] = tmp_path / f"state-{name}"
        (specs / f"{name}.yaml").write_text(pod_doc(name, pod.ip, net, states[name]))
    token = "hf_" + secrets.token_hex(16)
    g = Gpumod(home=tmp_path / "home", specs=specs)
    g.extra_env = {"GPUMOD_TEST_HF_TOKEN": token}
    yield g, net, states, token
    g.run("down", str(specs), "--yes", timeout=60)
    # what is left dies with the pods' PID namespaces (recorded pids are the pods' own, not ours)


def set_pod(g: Gpumod, name: str, **changes: str) -> None:
    path = g.specs / f"{name}.yaml"
    lines = path.read_text().splitlines(keepends=True)
    for key, value in changes.items():
        lines = [f"{key}: {value}\n" if ln.startswith(f"{key}:") else ln for ln in lines]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)


def test_fleet_converges_and_survives_losing_one_pod(fleet) -> None:
    g, net, states, _ = fleet
    first = g.run("apply", str(g.specs), "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    status = g.status()["pods"]
    for name in ("pod-a", "pod-b"):
        assert status[name]["reachable"], status[name]
        states_ = {s["service"]: s["state"] for s in status[name]["services"]}
        assert states_ == {"chat": "running", "web": "running"}
    assert g.run("plan", str(g.specs)).returncode == 0

    # switch both pods to m2 with slow loads, and lose pod-a's sshd while apply runs
    for name in ("pod-a", "pod-b"):
        set_pod(g, name, mode="m2", sim="{load_s: 2.0, sleep_s: 0.1, wake_s: 0.1}")
    proc = g.popen("apply", str(g.specs), "--yes")
    wait_for(lambda: (states["pod-a"] / "pods" / "pod-a" / "services" / "coder.json").exists(), timeout=30)
    kill_pod_sshd(net.pods[0])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "pod-a" in out and "Traceback" not in out
    b = {s["service"]: s["state"] for s in g.status()["pods"]["pod-b"]["services"]}
    assert b == {"coder": "running", "web": "running", "chat": "sleeping"}
    assert g.status()["pods"]["pod-a"]["reachable"] is False

    net.restart_pod(net.pods[0])
    again = g.run("apply", str(g.specs), "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    a = {s["service"]: s["state"] for s in g.status()["pods"]["pod-a"]["services"]}
    assert a == {"coder": "running", "web": "running", "chat": "sleeping"}
    assert "No changes. Pod pod-b is up to date." in again.stdout
    assert "  pod-b: " not in again.stdout  # no step ran there


def test_unknown_host_key_is_refused_unless_the_pod_opts_in(fleet, tmp_path: Path) -> None:
    g, net, states, _ = fleet
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    (g.specs / "pod-b.yaml").unlink()
    (g.specs / "pod-a.yaml").write_text(pod_doc("pod-a", net.pods[0].ip, net, states["pod-a"], known_hosts=str(empty)))
    res = g.run("plan", str(g.specs))
    assert res.returncode == 2, res.stdout + res.stderr
    text = res.stdout + res.stderr
    assert "host key" in text and "accept_new_host_key" in text and "Traceback" not in text
    assert empty.read_text() == ""

    (g.specs / "pod-a.yaml").write_text(
        pod_doc("pod-a", net.pods[0].ip, net, states["pod-a"], known_hosts=str(empty),
                extra="accept_new_host_key: true\n")
    )
    res = g.run("plan", str(g.specs))
    assert res.returncode == 1, res.stdout + res.stderr  # reachable now: changes pending
    assert net.pods[0].ip in empty.read_text()


def test_concurrent_applies_never_interleave(fleet) -> None:
    g, net, states, _ = fleet
    # the first apply holds the lock through a 20 s load: far past the second one's 5 s lock wait, even
    # when a busy machine slows the second one's own start-up by seconds
    set_pod(g, "pod-a", sim="{load_s: 20.0, sleep_s: 0.1, wake_s: 0.1}")
    first = g.popen("apply", str(g.specs), "--pod", "pod-a", "--yes")
    lock_owner = states["pod-a"] / "pods" / "pod-a" / "lock.owner"
    wait_for(lock_owner.exists, timeout=30)
    second = g.run("apply", str(g.specs), "--pod", "pod-a", "--yes", timeout=60)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert second.returncode == 1, second.stdout + second.stderr
    text = second.stdout + second.stderr
    assert "locked by" in text and f"pid {first.pid}" in text
    assert "start" not in second.stdout  # the loser touched nothing


def test_edit_restarts_only_that_service_and_drift_warn_only_reports(fleet) -> None:
    g, net, states, _ = fleet
    assert g.run("apply", str(g.specs), "--yes").returncode == 0
    before = {r["name"]: r["pid"] for r in g.records_in(states["pod-b"])}
    services = (g.specs / "services.yaml").read_text()
    (g.specs / "services.yaml").write_text(services.replace("--port, \"{port}\"]", "--port, \"{port}\", --x]"))
    plan = json.loads(g.run("plan", str(g.specs), "--pod", "pod-b", "-o", "json").stdout)
    actions = [(s["action"], s["service"]) for s in plan["pods"]["pod-b"]["steps"]]
    assert actions == [("stop", "web"), ("restart", "web")]
    assert g.run("apply", str(g.specs), "--pod", "pod-b", "--yes").returncode == 0
    after = {r["name"]: r["pid"] for r in g.records_in(states["pod-b"])}
    assert after["chat"] == before["chat"] and after["web"] != before["web"]

    text = (g.specs / "services.yaml").read_text()
    (g.specs / "services.yaml").write_text(
        text.replace("vram_mb: 8000\nsleep: l1\n", "vram_mb: 9000\nsleep: l1\ndrift: warn\n")
    )
    res = g.run("plan", str(g.specs), "--pod", "pod-b")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "chat" in res.stdout and "warn" in res.stdout.lower()
    assert g.run("apply", str(g.specs), "--pod", "pod-b", "--yes").returncode == 0
    assert {r["name"]: r["pid"] for r in g.records_in(states["pod-b"])}["chat"] == before["chat"]


def test_secret_values_never_leak(fleet) -> None:
    g, net, states, token = fleet
    res = g.run("-vv", "apply", str(g.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    outputs = [res.stdout, res.stderr]
    outputs.append(g.run("plan", str(g.specs), "-o", "json").stdout)
    outputs.append(g.run("status", str(g.specs), "-o", "json").stdout)
    outputs.append(g.run("apply", str(g.specs), "--yes", "-o", "json").stdout)
    assert all(token not in text for text in outputs)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
    for state in states.values():
        for path in state.rglob("*"):
            if path.is_file():
                readable_by_others = path.stat().st_mode & 0o044
                if readable_by_others or path.suffix == ".log":
                    assert token.encode() not in path.read_bytes(), path
    # the service did get it (in its environment, readable only by its owner)
    chat = next(r for r in g.records_in(states["pod-a"]) if r["name"] == "chat")
    environ = subprocess.run(
        ["ssh", "-i", str(net.keys.client_key), "-o", f"UserKnownHostsFile={net.keys.known_hosts}",
         "-o", "BatchMode=yes", f"root@{net.pods[0].ip}", f"cat /proc/{chat['pid']}/environ"],
        capture_output=True, timeout=30,
    ).stdout
    assert f"HF_TOKEN={token}".encode() in environ
    time.sleep(0)
