"""`gpumod prompt` and `gpumod ssh` on a pod behind a real sshd in its own network namespace:
the service binds 127.0.0.1 on the pod, so the chat goes through a port forward over the pod's
SSH connection; `gpumod ssh` runs the system ssh with the pod's key and known_hosts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import Gpumod
from test_ssh_fleet import SERVICES, pod_doc

pytestmark = pytest.mark.e2e


@pytest.fixture
def ssh_pod(netns_pods, tmp_path: Path):
    net = netns_pods(n=1)
    specs = tmp_path / "specs"
    specs.mkdir()
    # vLLM answers a chat offering tools only with both tool-calling flags
    tools = "sleep: l1\nargs: {enable-auto-tool-choice: true, tool-call-parser: hermes}\n"
    (specs / "services.yaml").write_text(SERVICES.replace("sleep: l1\n", tools, 1))
    (specs / "pod-a.yaml").write_text(pod_doc("pod-a", net.pods[0].ip, net, tmp_path / "state"))
    g = Gpumod(home=tmp_path / "home", specs=specs)
    g.extra_env = {"GPUMOD_TEST_HF_TOKEN": "hf_test"}
    yield g, net
    g.run("down", str(specs), "--yes", timeout=60)


def test_prompt_reaches_a_service_on_an_ssh_pod_through_a_forward(ssh_pod, tmp_path: Path) -> None:
    g, net = ssh_pod
    res = g.run("apply", str(g.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    work = tmp_path / "work"
    work.mkdir()
    (work / "gamma.md").write_text("g\n")
    chat = subprocess.run(
        [sys.executable, "-m", "gpumod.cli", "prompt", str(g.specs), "chat", "--json", "list files using ls"],
        capture_output=True, text=True, env=g.env, cwd=work, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert chat.returncode == 0, chat.stderr
    done = [json.loads(line) for line in chat.stdout.splitlines()][-1]
    assert done == {"type": "done", "text": "The tool returned 1 line(s); the first is: gamma.md"}

    remote = g.run("ssh", str(g.specs), "pod-a", "hostname; echo $((6*7))")
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout.splitlines()[-1] == "42"
    assert remote.stdout.splitlines()[0] != subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
