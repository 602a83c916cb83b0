"""``plan(desired, observed) -> Plan``: what to do on each pod, and why (docs/design.md, rules 1–8).

Pure: no I/O, no clock (the observation carries its own time), no randomness. Per pod it
decides each service's fate (``gpumod.core.fates``), places services on GPUs and prices the end
state of every GPU (``gpumod.core.placement``) plus the brief awake peak of every
start-then-sleep along the fill phase and the free MiB each fill wave needs, which the executor
waits for (here), refuses with alternatives when a GPU does not fit
(``gpumod.core.alternatives``), and orders the steps in phases and waves
(``gpumod.core.ordering``). Everything is keyed and sorted by name, so the same inputs give the
same plan whatever order they came in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from gpumod.core.alternatives import suggest
from gpumod.core.fates import Fate, backoff_s, decide, defer_dependents, limit_awake_standby
from gpumod.core.footprint import STARTS_ASLEEP
from gpumod.core.model import (
    Action, DesiredPod, FillNeed, GpuBudget, ObservedPod, Plan, PodPlan, Step, fingerprint,
)
from gpumod.core.ordering import reverse, waves
from gpumod.core.placement import Claim, Load, Placement
from gpumod.errors import GpuShortfall, Infeasibility

_PHASE_ORDER = {"free": 0, "fill": 1}

__all__ = ["backoff_s", "plan", "plan_pod"]


def plan(
    desired: Sequence[DesiredPod],
    observed: Sequence[ObservedPod],
    *,
    smaller: Mapping[str, tuple[str, int]] | None = None,
) -> Plan:
    """The plan for every desired pod (observed pods nobody desires are left alone).

    ``smaller``: service → (preset name, awake MiB) of a lighter preset, offered as an
    alternative when a GPU does not fit (the CLI knows the catalog; the core does not).
    """
    seen = {o.name: o for o in observed}
    pods = tuple(plan_pod(d, seen.get(d.name), smaller=smaller) for d in sorted(desired, key=lambda d: d.name))
    normalised = tuple(replace(o, gpus=tuple(sorted(o.gpus, key=lambda g: g.index))) for o in observed)
    return Plan(pods, fingerprint(normalised))


@dataclass
class _Priced:
    """One pod's fates, placement and GPU budgets: everything but the steps."""

    fates: dict[str, Fate]
    placement: Placement
    fill_wave: dict[str, int]
    budgets: tuple[GpuBudget, ...]
    warnings: tuple[str, ...]
    fill_needs: tuple[FillNeed, ...]  # per fill wave and GPU: the MiB it allocates

    @property
    def over(self) -> list[GpuBudget]:
        return [b for b in self.budgets if b.need_mb > b.capacity_mb]


def plan_pod(
    pod: DesiredPod, obs: ObservedPod | None, *, smaller: Mapping[str, tuple[str, int]] | None = None
) -> PodPlan:
    if obs is not None and not obs.reachable:
        return PodPlan(pod.name, fits=True, warnings=(f"pod unreachable: {obs.error}",))
    seen = obs or ObservedPod(pod.name)
    priced = _price(pod, seen)
    fates = priced.fates
    deferred = tuple(f.deferred for f in fates.values() if f.deferred is not None)
    where = tuple((name, priced.placement.of.get(name, ())) for name in fates)
    if priced.over:

        def needs(alternative: DesiredPod) -> dict[int, int]:
            return {b.index: b.need_mb for b in _price(alternative, seen).budgets}

        alternatives = suggest(pod, priced.placement.of, priced.budgets, needs, smaller)
        shortfalls = tuple(_shortfall(pod.name, b) for b in priced.over)
        inf = Infeasibility(pod.name, shortfalls, alternatives)
        return PodPlan(pod.name, False, (), priced.budgets, deferred, priced.warnings, inf, where)
    steps = _steps(pod, seen, priced)
    return PodPlan(pod.name, True, steps, priced.budgets, deferred, priced.warnings, None, where, priced.fill_needs)


def _price(pod: DesiredPod, obs: ObservedPod) -> _Priced:
    have = {s.name: s for s in obs.services}
    warnings: list[str] = []
    fates = {
        s.name: decide(s, have.get(s.name), pod, obs.observed_at, warnings)
        for s in sorted(pod.services, key=lambda s: s.name)
    }
    limit_awake_standby(fates, pod)
    defer_dependents(fates)
    foreign: dict[int, int] = {}
    for g, mb in obs.foreign_mb:
        foreign[g] = foreign.get(g, 0) + mb
    placement = Placement(obs.gpus or pod.gpus, foreign, pod.reserve_mb, pod.max_awake)
    placement.place_all(_claim(f, placement.real) for f in fates.values())
    fill_wave = _fill_waves(fates)
    peaks, needs = _fill_peaks(fates, placement, fill_wave)
    if not placement.over():
        while _sleep_a_standby_for_a_serial_start(fates, placement, fill_wave, peaks):
            peaks, needs = _fill_peaks(fates, placement, fill_wave)
        while _sleep_an_active_member_for_a_serial_start(fates, placement, fill_wave, peaks, pod.mode):
            fill_wave = _fill_waves(fates)
            peaks, needs = _fill_peaks(fates, placement, fill_wave)
    budgets = tuple(
        placement.gpus[g].budget(peaks.get(g, (0, ""))) for g in placement.shown()
    )
    return _Priced(fates, placement, fill_wave, budgets, tuple(warnings), needs)


# -- placing and pricing ---------------------------------------------------------------------


def _claim(fate: Fate, real: tuple[int, ...]) -> Claim:
    spec, fp = fate.svc.spec, fate.svc.footprint
    awake = fp.awake_mb
    residual = awake if spec.sleep == "none" else min(fp.asleep_mb, awake)
    will_start_to_sleep = not fate.end_awake and (fate.sleep_after or fate.deferred is not None)
    transient = awake - residual if will_start_to_sleep and spec.sleep not in STARTS_ASLEEP else 0

    def load(awake_mb: int) -> Load:
        measured = awake_mb > awake
        if fate.target == "standby":
            return Load(
                fate.name, residual, standby=True, wake_mb=max(0, awake_mb - residual), awake=fate.end_awake,
                stuck=fate.stuck, transient_mb=transient, measured=measured,
            )
        if fate.end_awake:
            return Load(fate.name, awake_mb, measured=measured)
        return Load(fate.name, residual, asleep=True, transient_mb=transient)

    base = load(awake)
    per_gpu: dict[int, Load] = {}
    if fate.measured and fate.obs is not None:
        for g in fate.obs.gpus:
            if fate.obs.measured(g) > awake:
                per_gpu[g] = load(fate.obs.measured(g))
    pinned = spec.pinned_gpus
    count = len(pinned) if pinned is not None else spec.gpu_count
    gpus: tuple[int, ...] | None = None
    if fate.keep is not None and all(g in real for g in fate.keep):
        gpus = fate.keep  # it runs there and stays (a restart only keeps GPUs that still suit it)
    elif pinned is not None:
        gpus = tuple(sorted(pinned))
    return Claim(fate.name, count, base, awake, gpus, per_gpu)


def _usage(fate: Fate, load: Load) -> tuple[int, int, int]:
    """MiB of one service on one GPU: after phase free, during its fill wave, at the end."""
    end = load.mb + (load.wake_mb if load.standby and load.awake else 0)
    if fate.deferred is not None:
        return 0, 0, 0
    if fate.fill is None:
        return end, end, end
    fp = fate.svc.footprint
    if fate.fill[0] == "wake":
        residual = fp.awake_mb if fate.svc.spec.sleep == "none" else min(fp.asleep_mb, fp.awake_mb)
        return residual, fp.awake_mb, end
    return 0, end if fate.starts_asleep else fp.awake_mb, end  # start, restart (stopped in phase free)


def _fill_waves(fates: dict[str, Fate]) -> dict[str, int]:
    """Phase fill's wave per stepped service: dependencies first, serial start-then-sleeps alone,
    and a member slept to make room for them woken after them."""
    fill = [n for n, f in fates.items() if f.fill is not None]
    before = {name: (*fate.svc.spec.depends_on, *fate.wake_after) for name, fate in fates.items()}
    return waves(fill, before, serial={n for n in fill if fates[n].sleep_after})


def _fill_peaks(
    fates: dict[str, Fate], placement: Placement, fill_wave: Mapping[str, int]
) -> tuple[dict[int, tuple[int, str]], tuple[FillNeed, ...]]:
    """Walk phase fill wave by wave. Returns, per GPU, the highest MiB held during phase fill
    (a start-then-sleep counts awake in its wave) when it exceeds the end state, with the serial
    start that causes it; and per wave and GPU the MiB the wave allocates (what must be free
    before it runs)."""
    usage: dict[int, int] = {}
    at: dict[tuple[str, int], tuple[int, int, int]] = {}
    by_wave: dict[int, list[str]] = {}
    for name, fate in fates.items():
        for g in placement.of.get(name, ()):
            at[name, g] = _usage(fate, placement.gpus[g].loads[name])
            usage[g] = usage.get(g, 0) + at[name, g][0]
        if fate.fill is not None:
            by_wave.setdefault(fill_wave[name], []).append(name)
    peaks: dict[int, tuple[int, str]] = {}
    needs: list[FillNeed] = []
    for wave in sorted(by_wave):
        names = by_wave[wave]
        grows: dict[int, int] = {}
        for name in names:
            for g in placement.of.get(name, ()):
                grows[g] = grows.get(g, 0) + max(0, at[name, g][1] - at[name, g][0])
                usage[g] += at[name, g][1] - at[name, g][0]
        needs += [FillNeed(wave, g, mb) for g, mb in sorted(grows.items()) if mb > 0]
        serial = names[0] if len(names) == 1 and fates[names[0]].sleep_after else ""
        for name in names if serial else ():
            for g in placement.of.get(name, ()):
                gpu = placement.gpus[g]
                held = gpu.foreign_mb + gpu.reserve_mb + usage[g]
                if held > gpu.need() and held > peaks.get(g, (0, ""))[0]:
                    peaks[g] = (held, serial)
        for name in names:
            for g in placement.of.get(name, ()):
                usage[g] += at[name, g][2] - at[name, g][1]
    return peaks, tuple(needs)


def _sleep_a_standby_for_a_serial_start(
    fates: dict[str, Fate], placement: Placement, fill_wave: Mapping[str, int], peaks: Mapping[int, tuple[int, str]]
) -> bool:
    """Rule 4: where a start-then-sleep would exceed the GPU's budget while a standby member is
    awake there, sleep that member in phase free first (the last by name). True if one was."""
    for g, (_, starter) in sorted(peaks.items(), key=lambda p: (fill_wave[p[1][1]], p[0])):
        awake = sorted(
            (x.service for x in placement.gpus[g].loads.values() if x.standby and x.awake and not x.stuck),
            reverse=True,
        )
        if not awake:
            continue
        victim = fates[awake[0]]
        victim.free = ("sleep", f"standby: makes room to start {starter}")
        victim.end_awake = False
        for vg in placement.of.get(victim.name, ()):
            old = placement.gpus[vg].loads[victim.name]
            placement.gpus[vg].replace(replace(old, awake=False))
        return True
    return False


def _sleep_an_active_member_for_a_serial_start(
    fates: dict[str, Fate],
    placement: Placement,
    fill_wave: Mapping[str, int],
    peaks: Mapping[int, tuple[int, str]],
    mode: str,
) -> bool:
    """Rule 4 when the end state fits but a start-then-sleep's brief awake peak exceeds a GPU
    (a warm switch: members that a cold start would start after it already run awake): sleep
    the running member that frees most there in phase free, and wake it in phase fill after
    every start-then-sleep on its GPUs. True if one was."""
    for g, (held, starter) in sorted(peaks.items(), key=lambda p: (fill_wave[p[1][1]], p[0])):
        if held <= placement.gpus[g].capacity:
            continue
        awake = [
            f
            for f in fates.values()
            if g in placement.of.get(f.name, ())
            and f.fill is None and f.free is None and f.end_awake and not f.stuck and f.svc.spec.sleep != "none"
        ]
        if not awake:
            continue
        victim = max(awake, key=lambda f: (f.svc.footprint.wake_delta_mb, f.name))
        serial = sorted(
            n
            for n, f in fates.items()
            if f.sleep_after and set(placement.of.get(n, ())) & set(placement.of[victim.name])
        )
        victim.free = ("sleep", f"makes room to start {starter}, woken right after")
        victim.fill = ("wake", f"active in mode {mode}: woken after {', '.join(serial)} started")
        victim.wake_after = tuple(serial)
        return True
    return False


def _shortfall(pod: str, budget: GpuBudget) -> GpuShortfall:
    return GpuShortfall(pod, budget.index, budget.name, budget.capacity_mb, budget.need_mb, budget.users)


# -- steps -----------------------------------------------------------------------------------


def _steps(pod: DesiredPod, obs: ObservedPod, priced: _Priced) -> tuple[Step, ...]:
    fates, where = priced.fates, priced.placement.of
    free: dict[str, tuple[Action, str, tuple[int, ...], str | None]] = {}
    for seen in sorted(obs.services, key=lambda s: s.name):
        if seen.name not in fates:
            gone = "down requested" if pod.down else f"not in mode {pod.mode}"
            reason = gone if seen.alive else "stale record"
            free[seen.name] = ("stop", reason, tuple(seen.gpus), None)
    steps: list[Step] = []
    for name, fate in fates.items():
        level = fate.svc.spec.sleep
        if fate.free is not None:
            action, reason = fate.free
            gpus = tuple(fate.obs.gpus) if action == "stop" and fate.obs else where.get(name, ())
            free[name] = (action, reason, gpus, level if action == "sleep" else None)
        if fate.fill is not None:
            action, reason = fate.fill
            after = level if fate.sleep_after or fate.starts_asleep else None
            wave = priced.fill_wave[name]
            steps.append(
                Step(
                    pod.name, action, name, reason, "fill", wave, where.get(name, ()), after,
                    fate.sleep_after, fate.starts_asleep,
                )
            )
    free_wave = waves(free, reverse(_running_graph(pod, obs)))
    steps += [
        Step(pod.name, action, name, reason, "free", free_wave[name], gpus, level)
        for name, (action, reason, gpus, level) in free.items()
    ]
    steps.sort(key=lambda s: (_PHASE_ORDER[s.phase], s.wave, s.action, s.service))
    return tuple(steps)


def _running_graph(pod: DesiredPod, obs: ObservedPod) -> dict[str, tuple[str, ...]]:
    """``depends_on`` per service for phase free: what each running process was started with
    (recorded on the pod) and what its spec says now. A dependent stops or sleeps before its
    dependencies under either graph, so a service leaving the mode (or `down`) keeps its order."""
    graph = {s.name: s.depends_on for s in obs.services}
    for svc in pod.services:
        graph[svc.name] = tuple(sorted(set(graph.get(svc.name, ())) | set(svc.spec.depends_on)))
    return graph
