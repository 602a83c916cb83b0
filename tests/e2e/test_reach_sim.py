"""Reaching services of a simulated pod on this machine: `gpumod endpoints` gives their
127.0.0.1 URLs, `gpumod tunnel` prints them and exits 0 (nothing to forward), and a spec that
exposes a service without an API key is refused at validation, naming the file and line."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from e2e_helpers import Gpumod, kill_recorded
from testkit import free_port

pytestmark = pytest.mark.e2e


def specs_text(chat_port: int, web_port: int) -> str:
    return f"""kind: Pod
name: box
host: sim
mode: m
gpus: [{{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}}]
sim: {{load_s: 0.1, sleep_s: 0.1, wake_s: 0.1}}
---
kind: Service
name: chat
driver: vllm
model: Qwen/Qwen3-8B
port: {chat_port}
vram_mb: 6000
---
kind: Service
name: web
driver: command
port: {web_port}
vram_mb: 500
expose: true
api_key: {{from_file: web.key}}
command: ["{{python}}", -m, gpumod.sim.server, --flavour, plain, --, --host, "{{host}}", --port, "{{port}}"]
---
kind: Mode
name: m
services: [chat, web]
"""


@pytest.fixture
def box(tmp_path: Path):
    specs = tmp_path / "specs"
    specs.mkdir()
    ports = free_port(), free_port()
    (specs / "all.yaml").write_text(specs_text(*ports))
    key = "sk-" + secrets.token_hex(8)
    (specs / "web.key").write_text(key + "\n")
    (specs / "web.key").chmod(0o600)
    g = Gpumod(home=tmp_path / "home", specs=specs)
    yield g, ports, key
    g.run("down", str(specs), "--yes")
    kill_recorded(g.home)


def test_expose_without_an_api_key_is_refused_at_its_line(box) -> None:
    g, _, _ = box
    text = (g.specs / "all.yaml").read_text().replace("api_key: {from_file: web.key}\n", "")
    (g.specs / "all.yaml").write_text(text)
    res = g.run("validate", str(g.specs))
    assert res.returncode == 2, res.stdout + res.stderr
    line = text.splitlines().index("expose: true") + 1
    assert f"all.yaml:{line}:" in res.stderr and "api_key" in res.stderr
    assert "Traceback" not in res.stderr
    assert g.records() == []


def test_endpoints_and_tunnel_of_a_sim_pod(box) -> None:
    import openai

    g, (chat_port, web_port), key = box
    applied = g.run("apply", str(g.specs), "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr

    res = g.run("endpoints", str(g.specs), "-o", "json")
    assert res.returncode == 0, res.stderr
    found = {e["service"]: e for e in json.loads(res.stdout)["endpoints"]}
    assert found["chat"] == {
        "pod": "box", "service": "chat", "model": "Qwen/Qwen3-8B", "port": chat_port, "status": "running",
        "reach": "local", "url": f"http://127.0.0.1:{chat_port}/v1", "api_key": None,
    }
    assert found["web"]["api_key"] == "file:web.key" and found["web"]["reach"] == "local"

    res = g.run("tunnel", str(g.specs), timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert (
        f"export OPENAI_BASE_URL=http://127.0.0.1:{chat_port}/v1  # service chat (model Qwen/Qwen3-8B) on pod box"
        in lines
    )
    assert any(ln.startswith(f"export OPENAI_BASE_URL=http://127.0.0.1:{web_port}/v1  # service web") for ln in lines)

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{chat_port}/v1", api_key="unused", max_retries=0, timeout=10)
    assert [m.id for m in client.models.list()] == ["Qwen/Qwen3-8B"]

    # the command driver's {host} follows expose, and the plain sim server honours GPUMOD_API_KEY
    record = next(r for r in g.records() if r["name"] == "web")
    assert "0.0.0.0" in record["argv"] and key not in " ".join(record["argv"])
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{web_port}/v1/models", timeout=5)
    assert refused.value.code == 401
    request = urllib.request.Request(f"http://127.0.0.1:{web_port}/health")
    assert urllib.request.urlopen(request, timeout=5).status == 200
