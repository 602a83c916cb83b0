"""What the specs define, read for a person or an agent: modes, services, presets that fit.

``mode list`` / ``service list`` read only the specs; ``mode status`` / ``service status`` add an
observation (through ``gpumod.ops.status``, so the figures are the same as ``status``);
``presets`` says which known presets have a config for a pod's GPUs (``preset_fit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from gpumod.errors import GpumodError
from gpumod.ops.snapshot import select_pods
from gpumod.ops.status import ServiceStatus, StatusResult, status
from gpumod.spec import PresetCatalog, load_specs
from gpumod.spec.presets import preset_fit

__all__ = [
    "ModeInfo",
    "PresetVerdict",
    "PresetsResult",
    "ServiceInfo",
    "mode_list",
    "presets",
    "rows_to_json",
    "service_list",
    "service_status",
]


@dataclass(frozen=True)
class ModeInfo:
    name: str
    description: str
    services: tuple[str, ...]
    pods: tuple[str, ...]  # the pods whose `mode:` names it

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description,
            "services": list(self.services), "pods": list(self.pods),
        }


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    preset: str | None
    port: int | None
    modes: tuple[str, ...]  # the modes that list it

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "port": self.port, "modes": list(self.modes)}


def mode_list(spec_dir: str | Path) -> tuple[ModeInfo, ...]:
    specs = load_specs(spec_dir)
    return tuple(
        ModeInfo(
            m.name, m.description, tuple(x.name for x in m.members()),
            tuple(p.name for p in specs.pods if p.mode == m.name),
        )
        for m in specs.modes
    )


def service_list(spec_dir: str | Path, pod: str | None = None) -> tuple[ServiceInfo, ...]:
    """Every service the specs define; with ``pod``, only those of the pod's mode."""
    specs = load_specs(spec_dir)
    wanted: set[str] | None = None
    if pod is not None:
        mode = specs.mode(select_pods(specs, [pod])[0].mode)
        wanted = {x.name for x in mode.members()} if mode else set()
    return tuple(
        ServiceInfo(
            s.name, s.preset, s.port,
            tuple(m.name for m in specs.modes if s.name in {x.name for x in m.members()}),
        )
        for s in specs.services
        if wanted is None or s.name in wanted
    )


async def service_status(
    spec_dir: str | Path, name: str | None = None, pod_names: Sequence[str] | None = None
) -> tuple[StatusResult, tuple[tuple[str, ServiceStatus], ...]]:
    """The status rows (pod, row) of one service, or of all; with the full status they come from."""
    found = await status(spec_dir, pod_names)
    rows = tuple((p.pod, s) for p in found.pods for s in p.services if name is None or s.service == name)
    if name is not None and not rows:
        specs = found.snapshot.specs
        if specs.service(name) is None:
            raise GpumodError(
                f"no service named {name} in the specs or on the pods",
                hint=f"services: {', '.join(sorted(s.name for s in specs.services)) or 'none'}",
            )
    return found, rows


def rows_to_json(rows: Sequence[tuple[str, ServiceStatus]]) -> dict[str, Any]:
    """The JSON of ``service_status`` rows (every face): each row with its pod and its note."""
    return {"services": [{"pod": p, **r.to_json(), "note": r.note} for p, r in rows]}


@dataclass(frozen=True)
class PresetVerdict:
    name: str
    role: str
    verdict: str  # fits | possibly works | no config

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "verdict": self.verdict}


@dataclass(frozen=True)
class PresetsResult:
    pod: str | None
    gpus: tuple[str, ...]  # the GPU names judged against (declared)
    presets: tuple[PresetVerdict, ...]

    def to_json(self) -> dict[str, Any]:
        return {"pod": self.pod, "gpus": list(self.gpus), "presets": [p.to_json() for p in self.presets]}


def presets(spec_dir: str | Path | None, pod_name: str | None = None) -> PresetsResult:
    """Every known preset; with a pod, whether it has a config for the pod's declared GPUs."""
    catalog = PresetCatalog.load()
    if spec_dir is None or pod_name is None and not Path(spec_dir).exists():
        return PresetsResult(None, (), tuple(PresetVerdict(p.name, p.role or "", "") for p in catalog.presets))
    specs = load_specs(spec_dir)
    names = [pod_name] if pod_name else None
    pods = select_pods(specs, names)
    if len(pods) != 1:
        raise GpumodError(
            f"the specs define {len(pods)} pods; say which with --pod",
            hint=f"pods: {', '.join(p.name for p in pods)}",
        )
    pod = pods[0]
    gpus = tuple(g.name for g in pod.gpus or ())
    if not gpus:
        raise GpumodError(
            f"pod {pod.name} declares no GPUs; gpumod cannot judge presets without them",
            hint="add `gpus:` to the pod, or run `gpumod simulate` once it can be observed",
        )
    fits = preset_fit(catalog, gpus)
    return PresetsResult(pod.name, gpus, tuple(PresetVerdict(f.name, f.role, f.verdict) for f in fits))
