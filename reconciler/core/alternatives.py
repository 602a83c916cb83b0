"""Ways out of an infeasible plan, each priced in the MiB it saves (rule 5: "prints alternatives").

Every service on a GPU that does not fit is tried in turn: put it on standby or to sleep (if it
can sleep), a smaller context (when its KV cache per token is known), a smaller preset (the CLI
knows the catalog and passes ``smaller``), pin it to the GPU of the pod with most room, or drop
it from the mode. Each candidate is a changed DesiredPod that the planner prices again
(``needs``), so a saving is exactly what the plan would gain: the standby budget, the brief
awake peak of a start-then-sleep and measured VRAM all count. Sorted by saving, then text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from gpumod.core.footprint import context_savings
from gpumod.core.model import DesiredPod, DesiredService, Footprint, GpuBudget
from gpumod.core.placement import ABSENT_GPU
from gpumod.errors import Alternative

MIN_CONTEXT = 2048
MAX_ALTERNATIVES = 12

Needs = Callable[[DesiredPod], Mapping[int, int]]  # a pod -> MiB needed per GPU index


def _with(pod: DesiredPod, svc: DesiredService | None, name: str) -> DesiredPod:
    """``pod`` with service ``name`` replaced by ``svc`` (None = dropped)."""
    services = tuple(s for s in pod.services if s.name != name) + ((svc,) if svc is not None else ())
    return replace(pod, services=services)


def _smaller_context(svc: DesiredService, over: int) -> tuple[int, int] | None:
    """The largest halving of the context that saves ``over`` MiB, else one halving: (context, saves)."""
    spec = svc.spec
    if not spec.context or not spec.kv_mb_per_1k or spec.context // 2 < MIN_CONTEXT:
        return None
    new = spec.context // 2
    while context_savings(spec, new) < over and new // 2 >= MIN_CONTEXT:
        new //= 2
    if context_savings(spec, new) < over:
        new = spec.context // 2  # no context small enough alone: offer the first step
    saves = context_savings(spec, new)
    return (new, saves) if saves > 0 else None


def _lighter(svc: DesiredService, awake_mb: int) -> DesiredService:
    fp = svc.footprint
    return replace(svc, footprint=Footprint(awake_mb, min(fp.asleep_mb, awake_mb)))


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
        ctx = _smaller_context(svc, max(over.get(g, 0) for g in gpus))
        if ctx is not None:
            new_ctx, kv = ctx
            mb = saves(_with(pod, _lighter(svc, svc.footprint.awake_mb - kv), name))
            offer(f"{name}: context {spec.context} → {new_ctx} saves {mb} MiB", mb)
        if name in smaller:
            preset, awake_mb = smaller[name]
            mb = saves(_with(pod, _lighter(svc, awake_mb), name))
            offer(f"use preset {preset} for {name} ({awake_mb} MiB awake): saves {mb} MiB", mb)
        if spec.gpu_count == 1 and len(real) > 1:
            others = [b for b in real if b.index not in gpus]
            if others:
                target = max(others, key=lambda b: (b.capacity_mb - b.need_mb, -b.index))
                moved = _with(pod, replace(svc, spec=replace(spec, pinned_gpus=(target.index,))), name)
                after = needs(moved)
                if after.get(target.index, 0) <= target.capacity_mb:
                    mb = sum(need[g] - after.get(g, 0) for g in over)
                    room = target.capacity_mb - target.need_mb
                    offer(f"pin {name} to GPU {target.index} (has {room} MiB free): saves {mb} MiB", mb)
        dropped = saves(_with(pod, None, name))
        offer(f"drop {name} from mode {pod.mode}: saves {dropped} MiB", dropped)
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_ALTERNATIVES]
    return tuple(Alternative(text, mb) for text, mb in ranked)
