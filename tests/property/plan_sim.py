"""A pure model of executing a plan, for the property tests: what each GPU holds after the free
phase and after every fill wave, and the ObservedPod a pod would report after all the steps.

It models the pod, not the planner: a service uses its declared awake footprint when awake
(or what was measured, while it keeps running untouched) and its residual when asleep (from the
start, for a start_asleep step).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import groupby

from gpumod.core.model import DesiredPod, ObservedPod, ObservedService, PodPlan


@dataclass
class _Live:
    gpus: tuple[int, ...]
    awake: bool
    measured: dict[int, int]


def _usage(pod: DesiredPod, live: dict[str, _Live]) -> dict[int, int]:
    used: dict[int, int] = {}
    for name, state in live.items():
        svc = pod.service(name)
        if svc is None:  # unknown footprint: only ever stopped in phase free, before we measure
            continue
        fp = svc.footprint
        residual = fp.awake_mb if svc.spec.sleep == "none" else min(fp.asleep_mb, fp.awake_mb)
        for g in state.gpus:
            mb = max(fp.awake_mb, state.measured.get(g, 0)) if state.awake else residual
            used[g] = used.get(g, 0) + mb
    return used


def peaks(pod: DesiredPod, observed: ObservedPod, pod_plan: PodPlan) -> list[dict[int, int]]:
    """MiB used per GPU after phase free, then after each fill wave (start-then-sleep counted awake)."""
    return _walk(pod, observed, pod_plan)[0]


def allocations(pod: DesiredPod, observed: ObservedPod, pod_plan: PodPlan) -> list[dict[int, int]]:
    """Per fill wave, the MiB its steps allocate on each GPU (GPUs with none left out): what
    must be free on the pod before the wave runs."""
    return _walk(pod, observed, pod_plan)[1]


def _walk(
    pod: DesiredPod, observed: ObservedPod, pod_plan: PodPlan
) -> tuple[list[dict[int, int]], list[dict[int, int]]]:
    live: dict[str, _Live] = {}
    for s in observed.services:
        if s.alive:
            measured = {g: s.measured(g) for g in s.gpus} if s.status == "running" else {}
            live[s.name] = _Live(tuple(s.gpus), s.status != "sleeping", measured)
    free = [s for s in pod_plan.steps if s.phase == "free"]
    fill = [s for s in pod_plan.steps if s.phase == "fill"]
    for step in free:
        if step.action == "stop":
            live.pop(step.service, None)
        elif step.action == "sleep" and step.service in live:
            live[step.service] = _Live(live[step.service].gpus, False, {})
    out = [_usage(pod, live)]
    grown: list[dict[int, int]] = []
    for _, wave in groupby(fill, key=lambda s: s.wave):
        wave = list(wave)
        before = _usage(pod, live)
        for step in wave:
            gpus = step.gpus if step.action != "wake" else live[step.service].gpus
            live[step.service] = _Live(tuple(gpus), not step.start_asleep, {})
        out.append(_usage(pod, live))
        grown.append({g: mb - before.get(g, 0) for g, mb in sorted(out[-1].items()) if mb > before.get(g, 0)})
        for step in wave:
            if step.sleep_after:
                live[step.service].awake = False
    return out, grown


def apply(pod: DesiredPod, observed: ObservedPod, pod_plan: PodPlan) -> ObservedPod:
    """The pod as it would be observed after every step succeeded."""
    services = {s.name: s for s in observed.services}
    for step in pod_plan.steps:
        old = services.get(step.service)
        if step.action == "stop":
            services.pop(step.service, None)
        elif step.action == "sleep" and old is not None:
            services[step.service] = replace(old, status="sleeping", sleep_level=step.level, vram_mb=())
        elif step.action == "wake" and old is not None:
            services[step.service] = replace(old, status="running", sleep_level=None, vram_mb=())
        elif step.action in ("start", "restart"):
            svc = pod.service(step.service)
            assert svc is not None
            services[step.service] = ObservedService(
                name=step.service,
                status="sleeping" if step.sleep_after or step.start_asleep else "running",
                spec_hash=svc.spec_hash,
                gpus=step.gpus,
                sleep_level=step.level if step.sleep_after or step.start_asleep else None,
            )
    return replace(observed, services=tuple(services[n] for n in sorted(services)))
