"""The spec language: pydantic models of the YAML documents a user writes (Pod, Service, Mode).

Documents are flat: ``kind``, ``name``, then the fields. Unknown keys are errors. These models
only check one document at a time; cross-document checks (references, cycles, ports) live in
``gpumod.spec.checks``, and preset merging in ``gpumod.spec.presets``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Name = Annotated[
    str,
    Field(
        pattern=NAME_RE.pattern,
        description="lower-case letters, digits, '.', '_' and '-'; at most 63 characters",
    ),
]
DriverName = Literal["vllm", "llamacpp", "fastapi", "command", "docker"]
SleepKind = Literal["none", "l1", "l2", "router"]
MemberState = Literal["active", "sleeping", "standby"]
DriftPolicy = Literal["correct", "warn", "ignore"]
ArgValue = Union[bool, int, float, str, list[Union[int, float, str]], None]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuDecl(_Doc):
    """A GPU of a pod, declared (required for ``host: sim``, optional otherwise)."""

    name: str = Field(description="product name as nvidia-smi prints it, e.g. 'NVIDIA GeForce RTX 4090'")
    memory_mb: int = Field(gt=0, description="total memory in MiB (nvidia-smi memory.total)")


class SimSettings(_Doc):
    """Latencies of the simulated pod's servers, in seconds."""

    load_s: float = Field(0.5, ge=0, description="time a sim server spends 'loading' before it answers")
    sleep_s: float = Field(0.2, ge=0)
    wake_s: float = Field(0.2, ge=0)


class Health(_Doc):
    path: str = Field("/health", pattern=r"^/[^\s]*$")
    startup_timeout_s: float = Field(120, gt=0, description="a start fails if not healthy by then")


class PodSpec(_Doc):
    kind: Literal["Pod"]
    name: Name
    description: str = ""
    host: str = Field(
        "local",
        description="local | sim | ssh://user@host:port (also 'ssh root@1.2.3.4 -p 22')",
    )
    mode: Name = Field(description="the mode this pod runs")
    supervisor: Literal["auto", "systemd", "process"] = "auto"
    gpus: list[GpuDecl] | None = Field(None, description="required for sim pods; otherwise observed")
    reserve_mb: int = Field(512, ge=0, description="MiB per GPU never planned for")
    state_dir: str | None = Field(None, description="gpumod's state dir on the pod (default $GPUMOD_HOME or ~/.gpumod)")
    binaries: dict[str, str] = Field(
        default_factory=dict,
        description="executable per server kind, e.g. {vllm: /opt/venv/bin/vllm, llama-server: ~/bin/llama-server}",
    )
    sim: SimSettings | None = Field(None, description="latencies of the simulated servers (sim pods only)")
    vram_release_timeout_s: float = Field(60, gt=0)
    accept_new_host_key: bool = False


class ModeMember(_Doc):
    name: Name
    state: MemberState = "active"


class ModeSpec(_Doc):
    kind: Literal["Mode"]
    name: Name
    description: str = ""
    services: list[Union[Name, ModeMember]] = Field(default_factory=list)
    max_awake: int = Field(1, ge=0, description="standby members awake at once")

    def members(self) -> list[ModeMember]:
        return [m if isinstance(m, ModeMember) else ModeMember(name=m) for m in self.services]


class ServiceFields(_Doc):
    """Every field a Service or a preset may set (all optional here)."""

    description: str | None = None
    driver: DriverName | None = None
    model: str | None = Field(None, description="model id (Hugging Face id, or served name)")
    model_path: str | None = Field(None, description="llama.cpp: the .gguf file")
    models_dir: str | None = Field(None, description="llama.cpp router: the directory of .gguf files")
    port: int | None = Field(None, ge=1, le=65535)
    vram_mb: int | None = Field(None, gt=0, description="VRAM per GPU when awake, MiB")
    sleep_vram_mb: int | None = Field(None, ge=0, description="VRAM per GPU kept while asleep, MiB")
    weights_mb: int | None = Field(None, gt=0, description="model weights per GPU, MiB (for estimates)")
    kv_mb_per_1k: float | None = Field(None, gt=0, description="KV cache per 1,000 tokens of context, MiB")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    context: int | None = Field(None, gt=0, description="context length (vLLM --max-model-len, llama.cpp -c)")
    sleep: SleepKind | None = None
    gpus: int | list[int] | None = Field(
        None, description="a count (tensor parallel over N GPUs) or the GPU indices to pin"
    )
    health: Health | None = None
    args: dict[str, ArgValue] | None = Field(
        None, description="extra server flags without leading dashes; true = bare flag, null/false = omit"
    )
    env: dict[str, str] | None = None
    command: list[str] | None = Field(None, description="command/fastapi: argv; {port} is replaced")
    cwd: str | None = None
    role: str | None = Field(None, description="chat | code | embedding | reranker | asr | vision ...")
    stop_timeout_s: float | None = Field(None, gt=0)

    @field_validator("env")
    @classmethod
    def _env_keys(cls, env: dict[str, str] | None) -> dict[str, str] | None:
        for key in env or {}:
            if not ENV_KEY_RE.match(key):
                raise ValueError(f"environment key {key!r} is not a valid variable name")
        return env


class ServiceSpec(ServiceFields):
    kind: Literal["Service"]
    name: Name
    preset: str | None = Field(None, description="a known preset to start from; any field here overrides it")
    depends_on: list[Name] = Field(default_factory=list)
    drift: DriftPolicy = "correct"


class PresetConfig(_Doc):
    """A per-GPU-type/count variant of a preset (pi's known-model configs)."""

    gpu_count: int = Field(1, ge=1)
    gpu_types: list[str] = Field(default_factory=list, description="substrings of the GPU name, e.g. H100")
    args: dict[str, ArgValue] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    vram_mb: int | None = Field(None, gt=0)
    notes: str = ""


class PresetSpec(ServiceFields):
    """A preset file in gpumod.presets: a partial service plus optional per-GPU configs."""

    name: str
    notes: str = ""
    configs: list[PresetConfig] = Field(default_factory=list)
