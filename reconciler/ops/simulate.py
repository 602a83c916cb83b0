"""``simulate``: would another mode, or another set of services, fit a pod? Touches nothing.

One observation of the pod, planned twice with the same planner as ``apply``: *current* (the
pod's own mode, as it would be planned now) and *proposed* (the what-if). A pod that cannot be
reached is priced on its declared GPUs as if nothing ran on it. ``SimulationResult.to_json`` is
the shape every face returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from gpumod.core.model import GpuBudget, ObservedPod
from gpumod.errors import GpumodError
from gpumod.ops.snapshot import Snapshot, observe_fleet, plan_observed, select_pods
from gpumod.spec import PresetCatalog, load_specs
from gpumod.spec.edit import pick_pod
from gpumod.wiring import Fleet

__all__ = ["SimulationResult", "simulate"]


@dataclass(frozen=True)
class SimulationResult:
    """One observation of a pod, planned for its own mode (current) and the what-if (proposed)."""

    pod: str
    current: Snapshot
    proposed: Snapshot
    mode: str | None = None  # --mode
    add: tuple[str, ...] = ()  # --add
    services: tuple[str, ...] | None = None  # --services (instead of a mode)
    dependencies: tuple[str, ...] = ()  # services the proposed set needs that were not asked for
    unobserved: str = ""  # why the pod was priced as if nothing ran on it

    @property
    def fits(self) -> bool:
        found = self.proposed.plan.pod(self.pod)
        return found is not None and found.fits

    @property
    def current_mode(self) -> str:
        return next(p for p in self.current.pods if p.name == self.pod).mode

    @property
    def proposed_mode(self) -> str | None:
        """The mode priced as proposed; None when exact services were asked for instead."""
        return None if self.services is not None else (self.mode or self.current_mode)

    def budgets(self, side: Snapshot) -> dict[int, GpuBudget]:
        """Per GPU index: who uses what and the total, on ``self.current`` or ``self.proposed``."""
        found = side.plan.pod(self.pod)
        return {g.index: g for g in found.gpus} if found else {}

    def to_json(self) -> dict[str, Any]:
        def side(snap: Snapshot, mode: str | None) -> dict[str, Any]:
            found = snap.plan.pod(self.pod)
            desired = snap.desired_pod(self.pod)
            planned = snap.plan.to_json()["pods"].get(self.pod)
            return {
                "mode": mode,
                "services": [s.name for s in desired.services] if desired else [],
                "fits": bool(found and found.fits),
                "gpus": planned["gpus"] if planned else [],
                "infeasible": planned["infeasible"] if planned else None,
                "steps": len(found.steps) if found else 0,
            }

        proposed = side(self.proposed, self.proposed_mode)
        proposed.update(add=list(self.add), dependencies=list(self.dependencies))
        return {
            "pod": self.pod,
            "fits": self.fits,
            "unobserved": self.unobserved,
            "current": side(self.current, self.current_mode),
            "proposed": proposed,
        }


async def simulate(
    spec_dir: str | Path,
    pod_name: str | None,
    *,
    mode: str | None = None,
    add: Sequence[str] = (),
    services: Sequence[str] | None = None,
) -> SimulationResult:
    """Would this mode, these services, plus these additions fit the pod (None: the only pod)?
    Touches nothing."""
    if mode is not None and services is not None:
        raise GpumodError("--mode and --services are two ways to say what to run; pass one of them")
    specs = load_specs(spec_dir)
    if pod_name is None:
        pod_name = pick_pod(specs, None).name
    pods = select_pods(specs, [pod_name])
    async with Fleet(pods) as fleet:
        observed = await observe_fleet(fleet)
    unobserved = ""
    if not all(o.reachable for o in observed):  # price the what-if on the declared GPUs, from cold
        unobserved = "; ".join(o.error for o in observed if not o.reachable)
        blind = [o for o in observed if not o.reachable and not next(p for p in pods if p.name == o.name).gpus]
        if blind:  # nothing to price on: say why, rather than blame the specs for the missing GPUs
            o = blind[0]
            raise GpumodError(
                f"pod {o.name} cannot be reached ({o.why_unreachable}) and its spec declares no gpus: "
                "there are no GPUs to price the what-if on",
                hint="make the pod reachable, or declare its GPUs (gpus: [{name: ..., memory_mb: ...}]) "
                "to simulate without it",
            )
        observed = tuple(o if o.reachable else ObservedPod(o.name) for o in observed)
    catalog = PresetCatalog.load()
    current = plan_observed(specs, catalog, pods, observed)
    proposed = plan_observed(
        specs, catalog, pods, observed,
        mode_override={pod_name: mode} if mode else None,
        add={pod_name: list(add)} if add else None,
        services={pod_name: list(services)} if services is not None else None,
    )
    asked = set(add) | set(services or ())
    if services is None:
        found = specs.mode(mode or pods[0].mode)
        asked |= {m.name for m in found.members()} if found else set()
    wanted = proposed.desired_pod(pod_name)
    extra = tuple(s.name for s in wanted.services if s.name not in asked) if wanted else ()
    return SimulationResult(
        pod_name, current, proposed, mode, tuple(add), tuple(services) if services is not None else None,
        extra, unobserved,
    )
