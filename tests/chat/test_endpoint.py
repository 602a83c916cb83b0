"""Finding a service's pod, port, model and API key from the specs."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpumod.chat.endpoint import find_target, service_api_key
from gpumod.errors import GpumodError

SPECS = """
kind: Pod
name: box
host: sim
mode: m
gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]
---
kind: Service
name: chat
driver: vllm
model: org/model
port: 7123
vram_mb: 1000
args: {served-model-name: short}
env:
  VLLM_API_KEY: {from_env: MY_CHAT_KEY}
---
kind: Service
name: idle
driver: vllm
model: org/other
port: 7124
vram_mb: 1000
---
kind: Mode
name: m
services: [chat]
"""


def test_the_pod_port_served_name_and_key_secret_of_a_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "specs.yaml").write_text(SPECS)
    target = find_target(tmp_path, "chat")
    assert (target.pod.name, target.port, target.model) == ("box", 7123, "short")
    monkeypatch.setenv("MY_CHAT_KEY", "sk-secret")
    assert service_api_key(target) == "sk-secret"
    assert service_api_key(find_target(tmp_path, "idle")) is None  # in no mode: the only pod is assumed


def test_unknown_service_names_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "specs.yaml").write_text(SPECS)
    with pytest.raises(GpumodError, match="no service named nope") as caught:
        find_target(tmp_path, "nope")
    assert caught.value.hint == "services: chat, idle"
