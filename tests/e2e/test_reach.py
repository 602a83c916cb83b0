"""Reaching the served models (issue 9 item 3), with real parts: a pod in its own network
namespace behind a real sshd with simulated GPUs, the real `gpumod` command, and the real
`openai` SDK on the client side.

- a service that is not exposed listens on the pod's 127.0.0.1 only, and `gpumod tunnel`
  forwards it over the pod's SSH connection so that the SDK reaches it from here;
- `expose: true` listens on the pod's address and refuses a request without the API key; the key
  is in the server's environment, never in any command line on the pod nor in gpumod's logs or
  output; gpumod's own probes and calls (a llama.cpp router's /models and /models/load) send it;
- `gpumod endpoints` says how each service is reached.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from e2e_helpers import Gpumod, http_status

from infra.netns import kill_pod_sshd, ssh_run

pytestmark = pytest.mark.e2e

SERVICES = """
kind: Service
name: chat
driver: vllm
model: Qwen/Qwen3-8B
port: 8121
vram_mb: 6000
---
kind: Service
name: pub
driver: vllm
model: Qwen/Qwen3-4B
args: {served-model-name: qwen-small}
port: 8122
vram_mb: 6000
expose: true
api_key: {from_env: GPUMOD_TEST_API_KEY}
---
kind: Service
name: coder
driver: llamacpp
model: devstral
models_dir: /nonexistent/models
port: 8123
vram_mb: 6000
sleep: router
expose: true
api_key: {from_env: GPUMOD_TEST_API_KEY}
---
kind: Mode
name: m1
services: [chat, pub, coder]
"""


def pod_doc(ip: str, net, state: Path) -> str:
    return (
        f"kind: Pod\nname: pod-a\nhost: ssh://root@{ip}:22\nmode: m1\nsupervisor: process\n"
        f"known_hosts: {net.keys.known_hosts}\nidentity_file: {net.keys.client_key}\n"
        f"python: {sys.executable}\nstate_dir: {state}\n"
        "gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]\n"
        "sim: {load_s: 0.3, sleep_s: 0.1, wake_s: 0.1}\n"
    )


@pytest.fixture
def pod(netns_pods, tmp_path: Path):
    net = netns_pods(n=1)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "services.yaml").write_text(SERVICES)
    state = tmp_path / "state-pod-a"
    (specs / "pod-a.yaml").write_text(pod_doc(net.pods[0].ip, net, state))
    key = "sk-" + secrets.token_hex(16)
    g = Gpumod(home=tmp_path / "home", specs=specs, extra_env={"GPUMOD_TEST_API_KEY": key})
    applied = g.run("-vv", "apply", str(specs), "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    yield g, net, state, key, applied
    g.run("down", str(specs), "--yes", timeout=60)


def test_tunnel_brings_a_pod_service_to_the_openai_sdk(pod) -> None:
    import openai

    g, net, _, key, _ = pod
    ip = net.pods[0].ip
    with pytest.raises(urllib.error.URLError):  # not exposed: only the pod's loopback has it
        urllib.request.urlopen(f"http://{ip}:8121/v1/models", timeout=5)

    taken = socket.socket()  # chat's port is busy here: its forward takes another one
    taken.bind(("127.0.0.1", 8121))
    taken.listen()
    proc = g.popen("tunnel", str(g.specs))
    try:
        urls = {}
        while len(urls) < 3:
            line = proc.stdout.readline()
            assert line, "tunnel ended early"
            if line.startswith("export OPENAI_BASE_URL="):
                service = line.split("# service ", 1)[1].split()[0]
                urls[service] = line.split("=", 1)[1].split()[0]
        assert all(u.startswith("http://127.0.0.1:") and u.endswith("/v1") for u in urls.values()), urls
        assert urls["pub"] == "http://127.0.0.1:8122/v1" and urls["chat"] != "http://127.0.0.1:8121/v1"

        client = openai.OpenAI(base_url=urls["chat"], api_key="unused", max_retries=0, timeout=10)
        assert [m.id for m in client.models.list()] == ["Qwen/Qwen3-8B"]
        answer = client.chat.completions.create(
            model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "hello"}], max_tokens=8
        )
        assert answer.choices[0].message.content

        with_key = openai.OpenAI(base_url=urls["pub"], api_key=key, max_retries=0, timeout=10)
        assert [m.id for m in with_key.models.list()] == ["qwen-small"]
        without = openai.OpenAI(base_url=urls["pub"], api_key="wrong", max_retries=0, timeout=10)
        with pytest.raises(openai.AuthenticationError):
            without.models.list()
    finally:
        taken.close()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest and key not in rest


def test_exposed_service_needs_its_key_which_never_shows(pod) -> None:
    g, net, state, key, applied = pod
    ip = net.pods[0].ip
    assert http_status(f"http://{ip}:8122/health") == 200  # public, like vLLM's
    assert http_status(f"http://{ip}:8122/v1/models") == 401
    assert http_status(f"http://{ip}:8122/v1/models", "wrong") == 401
    assert http_status(f"http://{ip}:8122/v1/models", key) == 200
    assert http_status(f"http://{ip}:8123/models", key) == 200  # the llama.cpp router, loaded by gpumod with the key
    assert http_status(f"http://{ip}:8123/models") == 401

    status = {s["service"]: s["state"] for s in g.status()["pods"]["pod-a"]["services"]}
    assert status == {"chat": "running", "pub": "running", "coder": "running"}

    # on the pod: no command line holds the key; the servers' environments do (that is how it gets there)
    cmdlines = ssh_run(net.keys, ip, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done", check=True)
    assert "--flavour vllm" in cmdlines.stdout and key not in cmdlines.stdout
    records = {r["name"]: r for r in g.records_in(state)}
    environ = ssh_run(net.keys, ip, f"tr '\\0' '\\n' < /proc/{records['pub']['pid']}/environ", check=True)
    assert f"VLLM_API_KEY={key}" in environ.stdout
    environ = ssh_run(net.keys, ip, f"tr '\\0' '\\n' < /proc/{records['coder']['pid']}/environ", check=True)
    assert f"LLAMA_API_KEY={key}" in environ.stdout
    assert "--host 0.0.0.0" in " ".join(records["pub"]["argv"])
    assert "--host 127.0.0.1" in " ".join(records["chat"]["argv"])

    outputs = [applied.stdout, applied.stderr, g.run("status", str(g.specs), "-o", "json").stdout]
    outputs += [g.run("endpoints", str(g.specs), "-o", "json").stdout]
    assert all(key not in text for text in outputs)
    files = [p for p in state.rglob("*") if p.is_file()]  # records, logs, the cached agent
    assert any(p.suffix == ".log" for p in files)
    assert all(key.encode() not in p.read_bytes() for p in files)


def test_endpoints_of_an_ssh_pod(pod) -> None:
    g, net, _, _, _ = pod
    res = g.run("endpoints", str(g.specs), "-o", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    found = {e["service"]: e for e in json.loads(res.stdout)["endpoints"]}
    ip = net.pods[0].ip
    assert found["chat"]["url"] is None and found["chat"]["reach"] == "tunnel" and found["chat"]["api_key"] is None
    assert found["pub"]["url"] == f"http://{ip}:8122/v1" and found["pub"]["model"] == "qwen-small"
    assert found["pub"]["api_key"] == "env:GPUMOD_TEST_API_KEY"
    assert found["coder"]["model"] == "devstral" and found["coder"]["status"] == "running"
    text = g.run("endpoints", str(g.specs))
    assert text.returncode == 0
    assert "via gpumod tunnel" in text.stdout and "key in $GPUMOD_TEST_API_KEY" in text.stdout


def test_tunnel_ends_with_an_error_when_the_pod_goes_away(pod) -> None:
    g, net, _, _, _ = pod
    proc = g.popen("tunnel", str(g.specs))
    try:
        assert proc.stdout.readline().startswith("export OPENAI_BASE_URL=")
        kill_pod_sshd(net.pods[0])  # the pod's PID 1: the pod and its connection are gone
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, rest
    assert "pod pod-a: the SSH connection closed" in rest and "Traceback" not in rest
