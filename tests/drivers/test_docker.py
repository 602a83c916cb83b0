"""The docker driver: the exact command line (no env values, GPUs, 127.0.0.1 ports, labels), and
the foreground model on the real process supervisor with a FAKE `docker` executable."""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.base import HttpAnswer, PodContext, Probe
from gpumod.drivers.docker import DockerDriver, cleanup_script, container_name
from gpumod.drivers.registry import driver_for
from gpumod.drivers.transports.local import LocalTransport
from gpumod.errors import GpumodError, UnsupportedError
from gpumod.spec.resolved import ResolvedService

CTX = PodContext(pod="box", python="/opt/py/bin/python3")
SECRET = "hf_s3cr3t-VALUE-never-in-argv"


def chat(**kw) -> ResolvedService:
    base = dict(
        name="chat",
        driver="docker",
        port=8000,
        image="vllm/vllm-openai:v0.11.0",
        model="Qwen/Qwen3-8B",
        command=("--model", "{model}", "--port", "{port}"),
        container_port=8001,
        ports=("9100:9100",),
        volumes=("/data/hf:/root/.cache/huggingface:ro",),
        shm_size="16g",
        env=(("VLLM_LOGGING_LEVEL", "DEBUG"), ("CUDA_VISIBLE_DEVICES", "7")),
        secrets=(("HF_TOKEN", "env:HF_TOKEN"),),
        health_path="/health",
        stop_timeout_s=20,
    )
    return ResolvedService(**{**base, **kw})


def test_golden_argv() -> None:
    svc = chat()
    launch = driver_for("docker").launch(svc, (0, 1), CTX)
    assert launch.argv == (
        "sh", "-c", "docker rm -f gpumod-box-chat >/dev/null 2>&1; exec \"$@\"", "gpumod-docker",
        "docker", "run", "--rm", "--init",
        "--name=gpumod-box-chat",
        "--label=gpumod.pod=box",
        "--label=gpumod.service=chat",
        f"--label=gpumod.spec-hash={svc.spec_hash()}",
        "--stop-timeout=20",
        "--security-opt=no-new-privileges",
        "--network=bridge",
        '--gpus="device=0,1"',
        "--publish=127.0.0.1:8000:8001",
        "--publish=127.0.0.1:9100:9100",
        "--volume=/data/hf:/root/.cache/huggingface:ro",
        "--shm-size=16g",
        "--env=HF_TOKEN",
        "--env=VLLM_LOGGING_LEVEL",
        "vllm/vllm-openai:v0.11.0",
        "--model", "Qwen/Qwen3-8B", "--port", "8001",
    )
    # values reach `docker run` through its environment (secrets through the agent's secret_env)
    assert launch.env == (("CUDA_VISIBLE_DEVICES", "0,1"), ("VLLM_LOGGING_LEVEL", "DEBUG"))
    assert (launch.driver, launch.sleep, launch.cwd, launch.port, launch.gpus) == ("docker", "none", None, 8000, (0, 1))
    assert launch.probes == (Probe("health", "/health"),)
    assert dict(launch.meta) == {"model": "Qwen/Qwen3-8B", "image": "vllm/vllm-openai:v0.11.0",
                                 "container": "gpumod-box-chat"}


def test_no_env_value_in_argv() -> None:
    svc = chat(env=(("PLAIN", "plain-value-xyz"),))
    argv = " ".join(driver_for("docker").launch(svc, (0,), CTX).argv)
    assert "plain-value-xyz" not in argv and "--env=PLAIN" in argv and "--env=HF_TOKEN" in argv
    assert "CUDA_VISIBLE_DEVICES" not in argv  # inside, the container's GPUs are numbered from 0


def test_gpu_request_ports_and_defaults() -> None:
    svc = chat(container_port=None, ports=(), volumes=(), shm_size=None, network="gpumod-net", command=None)
    argv = driver_for("docker").launch(svc, (3,), CTX).argv
    assert '--gpus="device=3"' in argv and "--network=gpumod-net" in argv
    assert [a for a in argv if a.startswith("--publish")] == ["--publish=127.0.0.1:8000:8000"]
    assert argv[-1] == "vllm/vllm-openai:v0.11.0"  # the image's own command
    assert not any(a.startswith("--gpus") for a in driver_for("docker").launch(svc, (), CTX).argv)
    assert "--privileged" not in argv and not any("host" in a for a in argv if a.startswith("--network"))


def test_pod_binary_and_quoted_cleanup() -> None:
    ctx = PodContext(pod="box", binaries=(("docker", ("sudo", "-n", "/usr/bin/docker")),))
    argv = driver_for("docker").launch(chat(), (0,), ctx).argv
    assert argv[2] == "sudo -n /usr/bin/docker rm -f gpumod-box-chat >/dev/null 2>&1; exec \"$@\""
    assert argv[4:8] == ("sudo", "-n", "/usr/bin/docker", "run")
    assert cleanup_script(["/opt/my docker"], "gpumod-a-b").startswith("'/opt/my docker' rm -f gpumod-a-b ")
    assert container_name("box", "chat") == "gpumod-box-chat"


def test_image_is_required_and_no_sleep() -> None:
    with pytest.raises(GpumodError, match="image"):
        DockerDriver().launch(chat(image=None), (0,), CTX)
    with pytest.raises(UnsupportedError):
        DockerDriver().sleep_calls(chat(), "l1")
    with pytest.raises(UnsupportedError):
        DockerDriver().wake_calls(chat())
    assert DockerDriver().after_start(chat()) == []
    assert DockerDriver().parse("none", {"health": HttpAnswer(200)}).readiness == "ready"
    assert DockerDriver().parse("none", {"health": HttpAnswer(0)}).readiness == "refused"
    assert isinstance(driver_for("docker"), DockerDriver)


# --- FAKE docker on the real process supervisor -------------------------------------------------

FAKE_DOCKER = '''\
"""FAKE docker (tests only): records its argv; `run` serves /health on the first --publish port
until SIGTERM, which it records. Env values are recorded only as sha256."""
import hashlib, http.server, json, os, signal, sys, threading

log = os.environ["FAKE_DOCKER_LOG"]
args = sys.argv[1:]

def record(entry):
    with open(log, "a") as f:
        f.write(json.dumps(entry) + "\\n")

if args[:1] != ["run"]:
    record({"argv": args})
    sys.exit(0)
keys = [a.split("=", 1)[1] for a in args if a.startswith("--env=")]
seen = {k: hashlib.sha256(os.environ[k].encode()).hexdigest() for k in keys if k in os.environ}
record({"argv": args, "env_sha256": seen})
port = int(next(a for a in args if a.startswith("--publish=")).split(":")[1])

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass

server = http.server.HTTPServer(("127.0.0.1", port), Health)

def term(signum, frame):
    record({"signal": "TERM"})
    threading.Thread(target=server.shutdown).start()

signal.signal(signal.SIGTERM, term)
server.serve_forever()
record({"exited": True})
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def started_pids():
    """Make this process the subreaper of what the agent detaches; kill and reap it by PID at the end."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid in pids:
            if not _dead(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
        libc.prctl(36, 0, 0, 0, 0)


async def test_fake_docker_foreground_model_on_the_process_supervisor(tmp_path: Path, started_pids) -> None:
    """FAKE-DOCKER TEST: `docker` is a python script first on PATH, not Docker. It shows the
    foreground model: start -> healthy through the published port -> stop -> the fake saw TERM."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    calls = tmp_path / "docker-calls.jsonl"
    # the log's path is written into the fake: a service inherits no FAKE_DOCKER_LOG from the agent
    fake.write_text(f"#!{sys.executable}\nimport os\nos.environ['FAKE_DOCKER_LOG'] = {str(calls)!r}\n" + FAKE_DOCKER)
    fake.chmod(0o755)
    transport = LocalTransport(env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    state_dir = tmp_path / "state"
    agent = PodAgent(transport, pod="box", state_dir=str(state_dir), python=sys.executable)

    port = _free_port()
    svc = chat(port=port, container_port=None, ports=(), volumes=(), command=("serve",),
               env=(("PLAIN", "plain-value"),), stop_timeout_s=10)
    launch = DockerDriver().launch(svc, (0,), PodContext(pod="box", python=sys.executable))
    started = await agent.start(launch, secret_env={"HF_TOKEN": SECRET})
    pid = started["pid"]
    started_pids.append(pid)

    assert _wait(
        lambda: calls.exists() and any("env_sha256" in json.loads(ln) for ln in calls.read_text().splitlines())
    )
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        raw = await agent.observe()
        entry = raw["services"]["chat"]
        status = entry["probes"]["health"]["status"]
        if status == 200:
            break
        await asyncio.sleep(0.05)
    assert status == 200 and entry["alive"] is True and pid in entry["pids"]
    assert DockerDriver().parse("none", {"health": HttpAnswer(status)}).readiness == "ready"

    lines = [json.loads(ln) for ln in calls.read_text().splitlines()]
    assert lines[0] == {"argv": ["rm", "-f", "gpumod-box-chat"]}  # a leftover is removed first
    run = lines[1]
    assert run["argv"] == list(launch.argv[5:])  # exactly the driver's `docker run ...`, same pid (exec)
    assert run["env_sha256"] == {
        "HF_TOKEN": hashlib.sha256(SECRET.encode()).hexdigest(),
        "PLAIN": hashlib.sha256(b"plain-value").hexdigest(),
    }
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert str(fake) in cmdline and "--env=HF_TOKEN" in cmdline and SECRET not in cmdline

    await agent.stop("chat", 10)
    assert _wait(lambda: _dead(pid))
    assert {"signal": "TERM"} in [json.loads(ln) for ln in calls.read_text().splitlines()]
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
