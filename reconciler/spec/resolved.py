"""A service after preset merging: every field concrete, hashable, ready for a driver.

``spec_hash`` covers exactly what changes the running process (command line, environment,
model, port, footprint given to the server); editing a description or a health timeout does not
restart anything. Secrets are kept as references (``env:NAME`` / ``file:PATH``, as written in the
spec): the hash covers the reference, never the value, and no value is ever held here; the engine
reads values at apply time (``gpumod.secrets``). Docker fields and secrets enter the hash only
when set, so services that use neither keep the hash they had.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from gpumod.spec.kinds import DriftPolicy, DriverName, SleepKind

ArgItems = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class ResolvedService:
    name: str
    driver: DriverName
    port: int
    source: str = ""  # "path:line" of the Service document
    model: str | None = None
    model_path: str | None = None
    models_dir: str | None = None
    vram_mb: int | None = None
    sleep_vram_mb: int | None = None
    weights_mb: int | None = None
    kv_mb_per_1k: float | None = None
    gpu_memory_utilization: float | None = None
    context: int | None = None
    sleep: SleepKind = "none"
    gpu_count: int = 1
    pinned_gpus: tuple[int, ...] | None = None
    health_path: str = "/health"
    startup_timeout_s: float = 120.0
    args: ArgItems = ()
    env: tuple[tuple[str, str], ...] = ()  # plain values only
    secrets: tuple[tuple[str, str], ...] = ()  # (KEY, "env:NAME" | "file:PATH"), sorted by KEY
    # (KEY, "path:line" of the document declaring it): relative file paths start from its folder
    secret_origins: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    command: tuple[str, ...] | None = None
    cwd: str | None = None
    role: str | None = None
    stop_timeout_s: float = 30.0
    depends_on: tuple[str, ...] = ()
    drift: DriftPolicy = "correct"
    preset: str | None = None
    description: str = ""
    image: str | None = None  # docker
    container_port: int | None = None  # docker: the server's port inside the container (None = port)
    ports: tuple[str, ...] = ()  # docker: more "host:container" ports, published on 127.0.0.1
    volumes: tuple[str, ...] = ()  # docker: "source:/target[:ro|rw]", vetted at validation time
    network: str | None = None  # docker (None = bridge)
    shm_size: str | None = None  # docker
    expose: bool = False  # listen on 0.0.0.0 (else 127.0.0.1)
    api_key_env: str | None = None  # the variable (in ``secrets``) that carries the API key to the server
    extra: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def bind_host(self) -> str:
        """The address the server listens on: every interface only when the spec says ``expose: true``."""
        return "0.0.0.0" if self.expose else "127.0.0.1"

    def spec_hash(self) -> str:
        return _digest(self.hashed_fields(), 12)

    def field_digests(self) -> dict[str, str]:
        """A short digest per hashed field: recorded at start, so that a later spec change can
        be named by the fields it touched (``spec changed: context, port``)."""
        return {key: _digest(value, 8) for key, value in self.hashed_fields().items()}

    def hashed_fields(self) -> dict[str, Any]:
        """What ``spec_hash`` covers, by field."""
        launch: dict[str, Any] = {
            "driver": self.driver,
            "model": self.model,
            "model_path": self.model_path,
            "models_dir": self.models_dir,
            "port": self.port,
            "vram_mb": self.vram_mb,
            "sleep_vram_mb": self.sleep_vram_mb,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "context": self.context,
            "sleep": self.sleep,
            "gpu_count": self.gpu_count,
            "args": [[k, v] for k, v in self.args],
            "env": [[k, v] for k, v in self.env],
            "command": list(self.command) if self.command else None,
            "cwd": self.cwd,
            "extra": [[k, v] for k, v in self.extra],
        }
        if self.expose:
            launch["expose"] = True
        if self.secrets:
            launch["secrets"] = [[k, ref] for k, ref in self.secrets]
        if self.driver == "docker" or self.image is not None:
            launch["docker"] = {
                "image": self.image,
                "container_port": self.container_port,
                "ports": list(self.ports),
                "volumes": list(self.volumes),
                "network": self.network,
                "shm_size": self.shm_size,
            }
        return launch


def _digest(value: Any, length: int) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
