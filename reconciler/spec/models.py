"""The spec language: pydantic models of the YAML documents a user writes (Pod, Service, Mode).

Documents are flat: ``kind``, ``name``, then the fields. Unknown keys are errors. These models
only check one document at a time; cross-document checks (references, cycles, ports) and the
Docker security controls live in ``gpumod.spec.checks``, and preset merging in
``gpumod.spec.presets``. An ``env`` value is a plain string or a ``SecretRef`` naming where the
secret comes from; the value itself is never part of a spec.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gpumod.spec.kinds import DriftPolicy, DriverName, MemberState, SleepKind
from gpumod.spec.setup_models import PodSetup

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
NAME_RULE = (
    "use lower-case letters, digits, '.', '_' and '-' (at most 63 characters, starting and ending "
    "with a letter or digit)"
)
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# docker values go into argv: none may start with '-' (no option injection) or hold spaces
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
DOCKER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
PORT_MAP_RE = re.compile(r"^[0-9]{1,5}:[0-9]{1,5}(/(tcp|udp))?$")
SHM_RE = re.compile(r"^[0-9]+[bkmgBKMG]?$")
# the most MiB any one GPU figure may say (4 TiB, 20x the largest GPU made): a bigger one is a typo,
# refused at its line instead of planned as a 20-digit shortfall
MAX_MIB = 4 * 1024 * 1024


Name = Annotated[
    str,
    Field(
        pattern=NAME_RE.pattern,
        description="lower-case letters, digits, '.', '_' and '-'; at most 63 characters",
    ),
]


def pod_path(path: str) -> str:
    """A path on the pod as gpumod writes it into units and agent payloads: absolute or ``~/``, normalised.

    ``~`` is the pod user's home (the agent expands it, a unit gets ``%h``); a bare relative path
    or ``~user`` would mean different folders to the process and the systemd supervisor.
    """
    if not (path.startswith("/") or path == "~" or path.startswith("~/")):
        raise ValueError(f"{path!r} is not an absolute path; write /full/path or ~/path (a path on the pod)")
    head, rest = ("~", path[1:]) if path.startswith("~") else ("", path)
    parts = rest.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()  # one trailing '/' is fine
    if any(part in ("", ".", "..") for part in parts):
        fixed = head + "/" + "/".join(p for p in parts if p not in ("", "."))
        hint = "write it without '..'" if ".." in parts else f"write {fixed!r}"
        raise ValueError(f"path {path!r} is not normalised (no '.', '..' or '//'); {hint}")
    return path


def pod_program(value: str) -> str:
    """An executable on the pod: a bare name found on its PATH, or a pod path."""
    return value if value and "/" not in value and not value.startswith("~") else pod_path(value)


PodPath = Annotated[str, AfterValidator(pod_path)]
PodProgram = Annotated[str, AfterValidator(pod_program)]
ArgValue = Union[bool, int, float, str, list[Union[int, float, str]], None]


# the fields of any document that take a number (the validator below checks their annotation too)
NUMBER_FIELDS = (
    "memory_mb", "load_s", "sleep_s", "wake_s", "startup_timeout_s", "reserve_mb", "vram_release_timeout_s",
    "max_awake", "port", "vram_mb", "sleep_vram_mb", "weights_mb", "kv_mb_per_1k", "gpu_memory_utilization",
    "context", "gpus", "stop_timeout_s", "container_port", "gpu_count",
)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @field_validator(*NUMBER_FIELDS, mode="before", check_fields=False)  # not "*": kind is a discriminator
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML 1.1 reads yes/no/on/off as booleans and pydantic takes true for 1: `port: yes`
        became port 1."""
        if isinstance(value, bool) and info.field_name and _numeric(cls.model_fields[info.field_name].annotation):
            word = str(value).lower()
            raise ValueError(f"input should be a number, got {word} (YAML reads yes/no/on/off as true/false)")
        return value


def _numeric(annotation: Any) -> bool:
    """Whether a field takes a number (``int``, ``float | None``, ``int | list[int] | None``...)."""
    return annotation in (int, float) or any(arg in (int, float) for arg in get_args(annotation))


class SecretRef(_Doc):
    """Where a secret comes from, read on the machine running gpumod at apply time (never stored)."""

    from_env: str | None = Field(None, description="an environment variable of the shell running gpumod")
    from_file: str | None = Field(
        None,
        description="a local file (mode 0600; ~ expanded, relative to the spec file's folder); "
        "trailing newline stripped",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.from_env is None) == (self.from_file is None):
            raise PydanticCustomError(
                "secret_ref", "a secret reference has exactly one key, from_env (a variable) or from_file (a path)"
            )
        if self.from_env is not None and not ENV_KEY_RE.match(self.from_env):
            raise PydanticCustomError("secret_ref", "from_env names an environment variable (letters, digits, '_')")
        if self.from_file is not None and not self.from_file.strip():
            raise PydanticCustomError("secret_ref", "from_file is the path of a local file")
        return self

    def ref(self) -> str:
        """``env:NAME`` or ``file:PATH`` (as written): what the spec hash covers, never the value."""
        return f"env:{self.from_env}" if self.from_env is not None else f"file:{self.from_file}"


def _env_kind(value: Any) -> str:
    return "secret" if isinstance(value, (dict, SecretRef)) else "plain"


EnvValue = Annotated[
    Union[Annotated[str, Tag("plain")], Annotated[SecretRef, Tag("secret")]],
    Discriminator(_env_kind),
]


def env_key(key: str) -> str:
    """An environment variable name (SEC-D10: no '=' or spaces).

    Values with a NUL or any other control character never get here: the YAML layer refuses
    them in every string of a spec (``gpumod.spec.nodes``).
    """
    if not ENV_KEY_RE.match(key):
        raise ValueError(f"{key!r} is not a valid variable name; use letters, digits and '_' (no digit first)")
    return key


EnvMap = dict[Annotated[str, AfterValidator(env_key)], EnvValue]


class GpuDecl(_Doc):
    """A GPU of a pod, declared (required for ``host: sim``, optional otherwise)."""

    name: str = Field(description="product name as nvidia-smi prints it, e.g. 'NVIDIA GeForce RTX 4090'")
    memory_mb: int = Field(gt=0, le=MAX_MIB, description="total memory in MiB (nvidia-smi memory.total)")


class SimSettings(_Doc):
    """Latencies of the simulated pod's servers, in seconds."""

    load_s: float = Field(0.5, ge=0, description="time a sim server spends 'loading' before it answers")
    sleep_s: float = Field(0.2, ge=0)
    wake_s: float = Field(0.2, ge=0)
    driver_version: str | None = Field(
        None, pattern=r"^[0-9]+(\.[0-9]+){1,2}$",
        description="the NVIDIA driver the simulated nvidia-smi reports (default 550.54.15), e.g. an old one",
    )


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
    reserve_mb: int = Field(512, ge=0, le=MAX_MIB, description="MiB per GPU never planned for")
    state_dir: PodPath | None = Field(
        None, description="gpumod's state dir on the pod, absolute or ~/ (default $GPUMOD_HOME or ~/.gpumod)"
    )
    binaries: dict[str, PodProgram] = Field(
        default_factory=dict,
        description="executable per server kind, e.g. {vllm: /opt/venv/bin/vllm, llama-server: ~/bin/llama-server}",
    )
    sim: SimSettings | None = Field(
        None,
        description="latencies of the simulated servers; on an SSH pod: simulate its GPUs there "
        "(needs gpumod installed for the pod's python)",
    )
    python: PodProgram = Field(
        "python3",
        description="the pod's Python 3, a name on its PATH or a path (runs gpumod's agent; {python} in commands)",
    )
    vram_release_timeout_s: float = Field(60, gt=0)
    accept_new_host_key: bool = Field(
        False, description="SSH: accept and record an unknown host key (a changed key is always refused)"
    )
    known_hosts: str | None = Field(None, description="SSH: known_hosts file (default ~/.ssh/known_hosts)")
    identity_file: str | None = Field(None, description="SSH: private key to log in with (default: agent, ~/.ssh/id_*)")
    public_host: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]*$",
        description="the address clients use for this pod's exposed services (default: the SSH host); "
        "for pods behind a proxy or NAT",
    )
    setup: PodSetup | None = Field(
        None,
        description="a bare rented GPU box: what gpumod installs there (uv, a venv with vLLM, a model cache); "
        "missing pieces become plan steps, run before any start",
    )
    env: EnvMap | None = Field(
        None,
        description="environment of every service on this pod (a service's own env wins); "
        "values or {from_env|from_file}",
    )


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
        # a bare name was validated as this document's: no need to build ModeMember's validator for it
        return [m if isinstance(m, ModeMember) else ModeMember.model_construct(name=m) for m in self.services]


class ServiceFields(_Doc):
    """Every field a Service or a preset may set (all optional here)."""

    description: str | None = None
    driver: DriverName | None = None
    model: str | None = Field(None, description="model id (Hugging Face id, or served name)")
    model_path: str | None = Field(None, description="llama.cpp: the .gguf file")
    models_dir: str | None = Field(None, description="llama.cpp router: the directory of .gguf files")
    port: int | None = Field(None, ge=1, le=65535)
    vram_mb: int | None = Field(None, gt=0, le=MAX_MIB, description="VRAM per GPU when awake, MiB")
    sleep_vram_mb: int | None = Field(None, ge=0, le=MAX_MIB, description="VRAM per GPU kept while asleep, MiB")
    weights_mb: int | None = Field(None, gt=0, le=MAX_MIB, description="model weights per GPU, MiB (for estimates)")
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
    env: EnvMap | None = Field(
        None, description="environment variables: a value, or a secret as {from_env: NAME} or {from_file: PATH}"
    )
    command: list[str] | None = Field(
        None, description="command/fastapi: argv; docker: the container's command; {port} is replaced"
    )
    cwd: PodPath | None = Field(None, description="working directory on the pod, absolute or ~/")
    role: str | None = Field(None, description="chat | code | embedding | reranker | asr | vision ...")
    expose: bool | None = Field(
        None, description="listen on every interface (0.0.0.0) instead of 127.0.0.1; needs api_key"
    )
    api_key: SecretRef | None = Field(
        None, description="the key clients must send (Authorization: Bearer), as {from_env: NAME} or {from_file: PATH}"
    )
    stop_timeout_s: float | None = Field(None, gt=0)
    # driver docker (checked in gpumod.spec.checks: SEC-D7..D10)
    image: str | None = Field(
        None, pattern=IMAGE_RE.pattern, description="docker: the image, e.g. vllm/vllm-openai:v0.11.0"
    )
    container_port: int | None = Field(
        None, ge=1, le=65535, description="docker: the port the server listens on inside the container (default: port)"
    )
    ports: list[Annotated[str, Field(pattern=PORT_MAP_RE.pattern)]] | None = Field(
        None, description="docker: more published ports, 'host:container', always bound to 127.0.0.1"
    )
    volumes: list[str] | None = Field(None, description="docker: 'host-path-or-volume:/container/path[:ro]'")
    network: str | None = Field(
        None, pattern=DOCKER_NAME_RE.pattern, description="docker: the network (default bridge; host/macvlan refused)"
    )
    privileged: bool | None = Field(None, description="docker: always refused (SEC-D7); only false is accepted")
    shm_size: str | None = Field(None, pattern=SHM_RE.pattern, description="docker: --shm-size, e.g. 16g")


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
    vram_mb: int | None = Field(None, gt=0, le=MAX_MIB)
    notes: str = ""


class PresetSpec(ServiceFields):
    """A preset file in gpumod.presets: a partial service plus optional per-GPU configs."""

    name: str
    notes: str = ""
    configs: list[PresetConfig] = Field(default_factory=list)
