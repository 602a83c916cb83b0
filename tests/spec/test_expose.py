"""`expose` and `api_key` on a Service: refused without a key, resolved into the variable the
server reads (never a flag), the bind address each driver renders, and the pod-side helpers that
find the key again for gpumod's own calls."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from gpumod.drivers.agent.podside import service_api_key
from gpumod.drivers.base import PodContext
from gpumod.drivers.command import CommandDriver
from gpumod.drivers.docker import DockerDriver
from gpumod.drivers.llamacpp import LlamaCppDriver
from gpumod.drivers.supervisors.systemd_syntax import env_file_value, render_env_file
from gpumod.drivers.vllm import VllmDriver
from gpumod.reach import served_model
from gpumod.spec import PresetCatalog, resolve_service

from ._helpers import loaded, problems_of

CATALOG = PresetCatalog.load()
POD = "kind: Pod\nname: box\nmode: m\n---\nkind: Mode\nname: m\nservices: [web]\n"
CTX = PodContext(pod="box")


def svc_doc(driver: str, extra: str) -> str:
    body = {
        "vllm": "model: org/m\n",
        "llamacpp": "model_path: /m/x.gguf\n",
        "command": "command: [srv, --host, '{host}', --port, '{port}']\n",
        "docker": "image: vllm/vllm-openai:v0.11.0\n",
    }[driver]
    return f"kind: Service\nname: web\ndriver: {driver}\nport: 8080\nvram_mb: 100\n{body}{extra}"


def resolved(repo, driver: str, extra: str):
    specs = loaded(repo(**{"pod.yaml": POD, "svc.yaml": svc_doc(driver, extra)}))
    svc = specs.service("web")
    path, line = specs.where("Service", "web")
    return resolve_service(svc, CATALOG, gpu_name=None, source=f"{path}:{line}")


def test_expose_without_a_key_is_refused_at_its_line(repo) -> None:
    root = repo(**{"pod.yaml": POD, "svc.yaml": svc_doc("vllm", "expose: true\n")})
    problems = problems_of(root)
    assert len(problems) == 1 and problems[0].startswith(
        "specs/svc.yaml:7: service web has expose: true but no api_key"
    )


def test_a_key_without_expose_and_expose_with_a_key_validate(repo) -> None:
    assert problems_of(repo(**{"pod.yaml": POD, "svc.yaml": svc_doc("vllm", "api_key: {from_env: K}\n")})) == []
    text = svc_doc("vllm", "expose: true\napi_key: {from_file: k.txt}\n")
    assert problems_of(repo(**{"pod.yaml": POD, "svc.yaml": text})) == []


def test_the_key_goes_into_the_variable_the_server_reads_never_argv(repo) -> None:
    for driver, var in (("vllm", "VLLM_API_KEY"), ("llamacpp", "LLAMA_API_KEY"), ("command", "GPUMOD_API_KEY")):
        svc = resolved(repo, driver, "expose: true\napi_key: {from_env: MY_KEY}\n")
        assert svc.api_key_env == var and dict(svc.secrets)[var] == "env:MY_KEY"
        launch = {"vllm": VllmDriver(), "llamacpp": LlamaCppDriver(), "command": CommandDriver()}[driver].launch(
            svc, (0,), CTX
        )
        argv = " ".join(launch.argv)
        assert "api-key" not in argv and "MY_KEY" not in argv
        assert "0.0.0.0" in launch.argv and "127.0.0.1" not in launch.argv
        assert dict(launch.meta)["api_key_env"] == var


def test_services_listen_on_loopback_unless_exposed(repo) -> None:
    for driver in ("vllm", "llamacpp", "command"):
        svc = resolved(repo, driver, "")
        launch = {"vllm": VllmDriver(), "llamacpp": LlamaCppDriver(), "command": CommandDriver()}[driver].launch(
            svc, (0,), CTX
        )
        assert "127.0.0.1" in launch.argv and "0.0.0.0" not in launch.argv
        assert "api_key_env" not in dict(launch.meta)
    docker = DockerDriver()
    closed = " ".join(docker.launch(resolved(repo, "docker", ""), (0,), CTX).argv)
    opened = " ".join(docker.launch(resolved(repo, "docker", "expose: true\napi_key: {from_env: K}\n"), (0,), CTX).argv)
    assert "--publish=127.0.0.1:8080:8080" in closed and "--publish=0.0.0.0:8080:8080" in opened
    assert "--env=GPUMOD_API_KEY" in opened


def test_expose_changes_the_hash_and_no_expose_keeps_it(repo) -> None:
    plain = resolved(repo, "vllm", "")
    assert resolved(repo, "vllm", "expose: false\n").spec_hash() == plain.spec_hash()
    assert resolved(repo, "vllm", "expose: true\napi_key: {from_env: K}\n").spec_hash() != plain.spec_hash()


def test_served_model_is_what_the_server_lists(repo) -> None:
    assert served_model(resolved(repo, "vllm", "")) == "org/m"
    assert served_model(resolved(repo, "vllm", "args: {served-model-name: short}\n")) == "short"
    assert served_model(resolved(repo, "llamacpp", "args: {alias: dev}\n")) == "dev"


def test_env_file_value_reads_back_what_render_env_file_wrote() -> None:
    hostile = 'k"$`\\ey =x'
    text = render_env_file({"A": "1", "VLLM_API_KEY": hostile})
    assert env_file_value(text, "VLLM_API_KEY") == hostile
    assert env_file_value(text, "B") is None


def test_the_agent_finds_the_key_in_the_env_file_or_the_process(tmp_path) -> None:
    env_file = tmp_path / "web.env"
    env_file.write_text(render_env_file({"LLAMA_API_KEY": "sk-1"}))
    record = {"extra": {"api_key_env": "LLAMA_API_KEY"}, "env_file": str(env_file)}
    assert service_api_key(record) == "sk-1"
    assert service_api_key({"extra": {}, "env_file": str(env_file)}) is None
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], env={**os.environ, "VLLM_API_KEY": "sk-2"}
    )
    try:
        deadline = time.monotonic() + 10
        while b"time.sleep" not in Path(f"/proc/{child.pid}/cmdline").read_bytes():  # exec'd: its own environ
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert service_api_key({"extra": {"api_key_env": "VLLM_API_KEY"}, "pid": child.pid}) == "sk-2"
    finally:
        child.kill()
        child.wait()
