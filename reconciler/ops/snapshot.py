"""One look at the pods: specs, desired state, observation and the plan — nothing touched.

Why a module of its own: ``plan``, ``status``, ``simulate`` and every apply pass start from the
same snapshot; computing it in one place keeps their figures identical. Each call re-reads the
specs and re-observes the pods (level-triggered: nothing is remembered the pods cannot tell).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from gpumod.core.desired import build_desired
from gpumod.core.footprint import footprint
from gpumod.core.model import DesiredPod, ObservedPod, Plan
from gpumod.core.plan import plan as make_plan
from gpumod.errors import GpumodError, UsageError
from gpumod.observe import observe_pod
from gpumod.spec import PresetCatalog, SpecSet, resolve_service
from gpumod.spec.loader import display_path
from gpumod.spec.models import PodSpec, ServiceSpec
from gpumod.spec_cache import load_specs_cached
from gpumod.wiring import Fleet, PodHandle, gpumod_home

if TYPE_CHECKING:
    from gpumod.provision import Provision

__all__ = [
    "Snapshot",
    "observe_and_plan",
    "observe_fleet",
    "plan_observed",
    "select_pods",
    "snapshot",
]


@dataclass(frozen=True)
class Snapshot:
    """Specs, desired, observed and the plan of one pass."""

    specs: SpecSet
    pods: list[PodSpec]
    desired: tuple[DesiredPod, ...]
    observed: tuple[ObservedPod, ...]
    plan: Plan
    provision: Provision | None = None  # set-up and downloads of pods with setup: (their steps are in plan)

    def desired_pod(self, name: str) -> DesiredPod | None:
        return next((d for d in self.desired if d.name == name), None)

    def observed_pod(self, name: str) -> ObservedPod | None:
        return next((o for o in self.observed if o.name == name), None)

    @property
    def unreachable(self) -> tuple[ObservedPod, ...]:
        return tuple(o for o in self.observed if not o.reachable)


def select_pods(specs: SpecSet, names: Sequence[str] | None) -> list[PodSpec]:
    if not specs.pods:  # a forgotten pod.yaml: say so rather than "Converged." over nothing
        raise UsageError(
            f"the specs under {display_path(specs.root)} define no pod",
            hint="add a document with kind: Pod (its host, mode and gpus; see docs/specs.md)",
        )
    if not names:
        return list(specs.pods)
    known = {p.name: p for p in specs.pods}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(
            f"unknown pod(s): {', '.join(unknown)}",
            hint=f"pods in these specs: {', '.join(sorted(known)) or 'none'}",
        )
    return [known[n] for n in names]


async def observe_fleet(fleet: Fleet) -> tuple[ObservedPod, ...]:
    """All pods in parallel; an unreachable pod is reported in its ObservedPod, never raised."""
    handles = list(fleet.handles.values())

    async def one(handle: PodHandle) -> ObservedPod:
        if handle.error:
            return ObservedPod(handle.name, reachable=False, error=handle.error)
        setup = None
        if handle.spec.setup is not None:  # gpumod.provision only for pods with setup: (`gpumod plan`'s start-up)
            from gpumod.provision import setup_probe

            setup = setup_probe(handle)
        return await observe_pod(handle.agent, setup=setup)

    return tuple(await asyncio.gather(*(one(h) for h in handles)))


def smaller_presets(
    desired: Sequence[DesiredPod], catalog: PresetCatalog
) -> dict[str, tuple[str, int]]:
    """For the planner's alternatives: per service, the known preset of the same role with the
    smallest awake footprint on that pod's GPU, when it is smaller than the service's own."""
    found: dict[str, tuple[str, int]] = {}
    for pod in desired:
        if not pod.gpus:
            continue
        gpu = max(pod.gpus, key=lambda g: (g.total_mb, -g.index))
        for svc in pod.services:
            if not svc.spec.role:
                continue
            best: tuple[int, str] | None = None
            for preset in catalog.by_role(svc.spec.role):
                if preset.name == svc.spec.preset:
                    continue
                try:
                    spec = resolve_service(
                        ServiceSpec(kind="Service", name=svc.name, preset=preset.name),
                        catalog, gpu_name=gpu.name, source=svc.spec.source,
                    )
                    awake = footprint(spec, gpu).awake_mb
                except (GpumodError, ValueError):
                    continue
                if awake < svc.footprint.awake_mb and (best is None or (awake, preset.name) < best):
                    best = (awake, preset.name)
            if best is not None:
                found[svc.name] = (best[1], best[0])
    return found


def plan_with_alternatives(
    desired: Sequence[DesiredPod], observed: Sequence[ObservedPod], catalog: PresetCatalog
) -> Plan:
    """The plan; when something does not fit, planned again with smaller presets to suggest."""
    first = make_plan(desired, observed)
    if first.fits:
        return first
    return make_plan(desired, observed, smaller=smaller_presets(desired, catalog))


def desired_for(
    specs: SpecSet,
    catalog: PresetCatalog,
    pods: Iterable[PodSpec],
    observed: Sequence[ObservedPod],
    *,
    mode_override: dict[str, str] | None = None,
    add: dict[str, Sequence[str]] | None = None,
    services: dict[str, Sequence[str]] | None = None,
    empty: bool = False,
) -> tuple[DesiredPod, ...]:
    by_name = {o.name: o for o in observed}
    names = [p.name for p in pods if by_name.get(p.name) is None or by_name[p.name].reachable or p.gpus]
    gpus = {n: by_name[n].gpus for n in names if n in by_name and by_name[n].gpus}
    desired = build_desired(
        specs, catalog, gpus, pods=names, mode_override=mode_override or {}, add=add or {}, services=services or {}
    )
    if empty:
        desired = tuple(replace(d, services=(), down=True) for d in desired)
    return desired


def plan_observed(
    specs: SpecSet,
    catalog: PresetCatalog,
    pods: list[PodSpec],
    observed: tuple[ObservedPod, ...],
    *,
    empty: bool = False,
    mode_override: dict[str, str] | None = None,
    add: dict[str, Sequence[str]] | None = None,
    services: dict[str, Sequence[str]] | None = None,
) -> Snapshot:
    """Plan what was observed against the specs (or a what-if of them): pure, nothing touched."""
    desired = desired_for(
        specs, catalog, pods, observed, mode_override=mode_override, add=add, services=services, empty=empty
    )
    return Snapshot(specs, pods, desired, observed, plan_with_alternatives(desired, observed, catalog))


async def observe_and_plan(
    fleet: Fleet, specs: SpecSet, pods: list[PodSpec], *, empty: bool = False, provision: bool = True
) -> Snapshot:
    """Observe the fleet's pods and plan them against the specs: one pass, nothing touched.
    ``provision``: plan set-up and downloads of pods with ``setup:`` (asks the hub for file lists;
    raises ``SetupRefusedError``); ``status`` leaves it out."""
    observed = await observe_fleet(fleet)
    snap = plan_observed(specs, PresetCatalog.load(), pods, observed, empty=empty)
    if empty or not provision or not any(p.setup is not None for p in pods):
        return snap
    from gpumod.provision import plan_provision  # set-up planning only for pods with setup: (start-up time)

    state_dirs = {h.name: h.agent.state_dir for h in fleet.handles.values()}
    prov = await plan_provision(pods, snap.desired, observed, state_dirs=state_dirs)
    return replace(snap, plan=prov.merged(snap.plan), provision=prov)


async def snapshot(spec_dir: str | Path, pod_names: Sequence[str] | None, *, provision: bool = True) -> Snapshot:
    """What `plan` and `status` show (no lock: they change nothing)."""
    specs = load_specs_cached(spec_dir, gpumod_home() / "cache" / "specs")
    pods = select_pods(specs, pod_names)
    async with Fleet(pods) as fleet:
        return await observe_and_plan(fleet, specs, pods, provision=provision)
