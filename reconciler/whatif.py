"""`gpumod simulate`: would another mode, or another set of services, fit a pod?

One observation of the pod, planned twice with the same planner as `apply`: *current* (the pod's
own mode, as it would be planned now) and *proposed* (the what-if). A pod that cannot be reached
is priced on its declared GPUs as if nothing ran on it. Touches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from gpumod.controller import Snapshot, observe_fleet, plan_observed, select_pods
from gpumod.core.model import ObservedPod
from gpumod.errors import GpumodError
from gpumod.spec import PresetCatalog, load_specs
from gpumod.wiring import Fleet

__all__ = ["Simulation", "simulate"]


@dataclass
class Simulation:
    """`gpumod simulate`: one observation of a pod, planned for its own mode (current) and for
    the asked-for what-if (proposed)."""

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


async def simulate(
    spec_dir: str | Path,
    pod_name: str,
    *,
    mode: str | None = None,
    add: Sequence[str] = (),
    services: Sequence[str] | None = None,
) -> Simulation:
    """Would this mode, these services, plus these additions fit the pod? Touches nothing."""
    if mode is not None and services is not None:
        raise GpumodError("--mode and --services are two ways to say what to run; pass one of them")
    specs = load_specs(spec_dir)
    pods = select_pods(specs, [pod_name])
    async with Fleet(pods) as fleet:
        observed = await observe_fleet(fleet)
    unobserved = ""
    if not all(o.reachable for o in observed):  # price the what-if on the declared GPUs, from cold
        unobserved = "; ".join(o.error for o in observed if not o.reachable)
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
    return Simulation(
        pod_name, current, proposed, mode, tuple(add), tuple(services) if services is not None else None,
        extra, unobserved,
    )
