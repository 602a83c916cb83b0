"""Ways out of an infeasible plan, each priced in the MiB it saves (rule 5: "prints alternatives").

Every service on a GPU that does not fit is tried in turn: put it on standby or to sleep (if it
can sleep), a smaller context (when its KV cache per token is known), a smaller preset (the CLI
knows the catalog and passes ``smaller``), pin it to the GPU of the pod with most room, or drop
it from the mode (with the members that depend on it: the mode must stay valid); and for the pod, fewer standby members
awake at once (``max_awake``). Each candidate is a changed DesiredPod whose changed service gets its footprint from
the footprint rules again, and that the planner prices again (``needs``): an alternative is offered only when
that re-pricing confirms a saving (a context change saves nothing when ``vram_mb`` is fixed), and
its saving is exactly what the plan would gain: the standby budget, the brief awake peak of a
start-then-sleep and measured VRAM all count. Sorted by saving, then text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

from gpumod.core.footprint import footprint, sizing_gpu
from gpumod.core.model import DesiredPod, DesiredService, Footprint, GpuBudget
from gpumod.core.placement import ABSENT_GPU
from gpumod.errors import Alternative, GpumodError
from gpumod.spec.resolved import ResolvedService

MIN_CONTEXT = 2048
MAX_ALTERNATIVES = 12

Needs = Callable[[DesiredPod], Mapping[int, int]]  # a pod -> MiB needed per GPU index


def _with(pod: DesiredPod, svc: DesiredService | None, name: str) -> DesiredPod:
    """``pod`` with service ``name`` replaced by ``svc`` (None = dropped)."""
    services = tuple(s for s in pod.services if s.name != name) + ((svc,) if svc is not None else ())
    return replace(pod, services=services)


def _respecced(pod: DesiredPod, svc: DesiredService, spec: ResolvedService) -> DesiredService:
    """``svc`` with ``spec``, its footprint computed again from the spec. (A spec that does not
    tell its footprint never reaches the planner; for one made by hand the figure is kept.)"""
    try:
        fp = footprint(spec, sizing_gpu(pod.gpus, spec.pinned_gpus))
    except (GpumodError, ValueError):
        fp = svc.footprint
    return replace(svc, spec=spec, footprint=fp)


def _lighter(svc: DesiredService, awake_mb: int) -> DesiredService:
    fp = svc.footprint
    return replace(svc, footprint=Footprint(awake_mb, min(fp.asleep_mb, awake_mb)))


def _dependents(pod: DesiredPod, name: str) -> list[str]:
    """The members that depend on ``name``, directly or not (a mode must keep what they need)."""
    found: set[str] = set()
    todo = [name]
    while todo:
        dep = todo.pop()
        for svc in pod.services:
            if dep in svc.spec.depends_on and svc.name not in found and svc.name != name:
                found.add(svc.name)
                todo.append(svc.name)
    return sorted(found)


def _first_enough(steps: Iterator[tuple[str, int]], over: int) -> tuple[str, int] | None:
    """Of candidate (what, saving) steps, each further than the last: the first that saves
    ``over`` MiB, else the first that saves anything (a combination may still be needed)."""
    first: tuple[str, int] | None = None
    for what, mb in steps:
        if mb <= 0:
            continue
        first = first or (what, mb)
        if mb >= over:
            return what, mb
    return first


def suggest(
    pod: DesiredPod,
    placement: Mapping[str, tuple[int, ...]],
    budgets: Sequence[GpuBudget],
    needs: Needs,
    smaller: Mapping[str, tuple[str, int]] | None = None,
) -> tuple[Alternative, ...]:
    """Alternatives for the GPUs of ``budgets`` that do not fit (``placement``: service → GPUs)."""
    smaller = smaller or {}
    need = {b.index: b.need_mb for b in budgets}
    over = {b.index: b.need_mb - b.capacity_mb for b in budgets if b.need_mb > b.capacity_mb}
    real = [b for b in budgets if b.name != ABSENT_GPU]
    found: dict[str, int] = {}

    def saves(candidate: DesiredPod) -> int:
        after = needs(candidate)
        return sum(need[g] - after.get(g, 0) for g in over)

    def offer(text: str, mb: int) -> None:
        if mb > 0 and text not in found:
            found[text] = mb

    def contexts(svc: DesiredService) -> Iterator[tuple[str, int]]:
        """Halvings of the context down to MIN_CONTEXT, each re-priced."""
        context = svc.spec.context or 0
        while context // 2 >= MIN_CONTEXT:
            context //= 2
            changed = _respecced(pod, svc, replace(svc.spec, context=context))
            yield str(context), saves(_with(pod, changed, svc.name))

    def fewer_awake() -> Iterator[tuple[str, int]]:
        for n in range(pod.max_awake - 1, -1, -1):
            yield str(n), saves(replace(pod, max_awake=n))

    for svc in sorted(pod.services, key=lambda s: s.name):
        name, spec = svc.name, svc.spec
        gpus = placement.get(name, ())
        if not set(gpus) & set(over):
            continue
        if svc.target == "active" and spec.sleep != "none":
            standby = saves(_with(pod, replace(svc, target="standby"), name))
            offer(f"make {name} standby (sleep {spec.sleep}): saves {standby} MiB", standby)
            sleeping = saves(_with(pod, replace(svc, target="sleeping"), name))
            if sleeping > standby:
                offer(f"make {name} sleeping in mode {pod.mode} (sleep {spec.sleep}): saves {sleeping} MiB", sleeping)
        smaller_context = _first_enough(contexts(svc), sum(over.get(g, 0) for g in gpus))
        if smaller_context is not None:
            context, mb = smaller_context
            offer(f"{name}: context {spec.context} → {context} saves {mb} MiB", mb)
        if name in smaller:
            preset, awake_mb = smaller[name]
            mb = saves(_with(pod, _lighter(svc, awake_mb), name))
            offer(f"use preset {preset} for {name} ({awake_mb} MiB awake): saves {mb} MiB", mb)
        if spec.gpu_count == 1 and len(real) > 1:
            others = [b for b in real if b.index not in gpus]
            if others:
                target = max(others, key=lambda b: (b.capacity_mb - b.need_mb, -b.index))
                pinned = _respecced(pod, svc, replace(spec, pinned_gpus=(target.index,)))
                after = needs(_with(pod, pinned, name))
                if after.get(target.index, 0) <= target.capacity_mb:
                    mb = sum(need[g] - after.get(g, 0) for g in over)
                    room = target.capacity_mb - target.need_mb
                    offer(f"pin {name} to GPU {target.index} (has {room} MiB free): saves {mb} MiB", mb)
        gone = _dependents(pod, name)
        dropped = saves(replace(pod, services=tuple(s for s in pod.services if s.name not in {name, *gone})))
        along = f" (with {', '.join(gone)}, which depend{'s' if len(gone) == 1 else ''} on it)" if gone else ""
        offer(f"drop {name}{along} from mode {pod.mode}: saves {dropped} MiB", dropped)
    lower = _first_enough(fewer_awake(), sum(over.values()))
    if lower is not None:
        n, mb = lower
        offer(f"lower max_awake of mode {pod.mode} from {pod.max_awake} to {n}: saves {mb} MiB", mb)
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_ALTERNATIVES]
    return tuple(Alternative(text, mb) for text, mb in ranked)
