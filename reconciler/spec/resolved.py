"""A service after preset merging: every field concrete, hashable, ready for a driver.

``spec_hash`` covers exactly what changes the running process (command line, environment,
model, port, footprint given to the server); editing a description or a health timeout does not
restart anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from gpumod.spec.models import DriftPolicy, DriverName, SleepKind

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
    env: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] | None = None
    cwd: str | None = None
    role: str | None = None
    stop_timeout_s: float = 30.0
    depends_on: tuple[str, ...] = ()
    drift: DriftPolicy = "correct"
    preset: str | None = None
    description: str = ""
    extra: tuple[tuple[str, Any], ...] = field(default=())

    def spec_hash(self) -> str:
        launch = {
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
        blob = json.dumps(launch, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
