"""The VRAM one service needs on one GPU, awake and asleep (pure).

The planner budgets GPUs with these figures, so they follow the order of trust of docs/design.md
(Footprints): the spec's ``vram_mb`` (which already holds the preset config's figure); else vLLM's
``gpu_memory_utilization`` × the GPU's *total* (vLLM reserves that share of total, not of free);
else an estimate from the model (weights + KV cache for the context + overhead); else an error
that tells the user to declare it. Asleep, a service keeps a residual: its ``sleep_vram_mb``, or
a typical figure for its sleep kind (the CUDA context of an L1/L2-sleeping vLLM, a bare
llama.cpp router).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gpumod.core.model import Footprint, GpuInfo
from gpumod.errors import Problem, SpecError
from gpumod.spec.presets import split_source
from gpumod.spec.resolved import ResolvedService

ESTIMATE_OVERHEAD_MB = 512  # CUDA context + activations + allocator slack, on top of weights and KV
SLEEP_RESIDUAL_MB: dict[str, int] = {"l1": 600, "l2": 400, "router": 300}
# sleep kinds whose server starts with nothing loaded (a llama.cpp router loads its model on
# request): a member that must end asleep starts asleep, with no brief awake peak (vLLM, by
# contrast, allocates its whole footprint before it can sleep)
STARTS_ASLEEP = frozenset({"router"})


def kv_cache_mb(kv_mb_per_1k: float, context: int) -> int:
    """MiB of KV cache for ``context`` tokens at ``kv_mb_per_1k`` MiB per 1,000 tokens."""
    return math.ceil(kv_mb_per_1k * context / 1000)


def awake_mb(svc: ResolvedService, gpu: GpuInfo) -> int:
    """VRAM per GPU while the service is awake; SpecError when nothing tells."""
    if svc.vram_mb is not None:
        return svc.vram_mb
    if svc.gpu_memory_utilization is not None:
        return math.ceil(svc.gpu_memory_utilization * gpu.total_mb)
    if svc.weights_mb is not None and (svc.kv_mb_per_1k is None or svc.context is not None):
        kv = kv_cache_mb(svc.kv_mb_per_1k, svc.context) if svc.kv_mb_per_1k and svc.context else 0
        return svc.weights_mb + kv + ESTIMATE_OVERHEAD_MB
    path, line = split_source(svc.source)
    raise SpecError(
        [Problem(path, line, f"cannot tell the VRAM footprint of {svc.name} on a {gpu.name}; set vram_mb")]
    )


def asleep_mb(svc: ResolvedService, awake: int) -> int:
    """VRAM per GPU kept while asleep (never more than awake; a service that cannot sleep keeps it all)."""
    if svc.sleep == "none":
        return awake
    residual = svc.sleep_vram_mb if svc.sleep_vram_mb is not None else SLEEP_RESIDUAL_MB[svc.sleep]
    return min(residual, awake)


def footprint(svc: ResolvedService, gpu: GpuInfo) -> Footprint:
    """The service's footprint on each of its GPUs, if those GPUs are like ``gpu``."""
    awake = awake_mb(svc, gpu)
    return Footprint(awake_mb=awake, asleep_mb=asleep_mb(svc, awake))


def sizing_gpu(gpus: Sequence[GpuInfo], pinned: Sequence[int] | None) -> GpuInfo:
    """The GPU a service's footprint is computed on: its first pinned GPU (when the pod has it),
    else the largest (the lowest index on a tie)."""
    by_index = {g.index: g for g in gpus}
    if pinned and pinned[0] in by_index:
        return by_index[pinned[0]]
    return max(gpus, key=lambda g: (g.total_mb, -g.index))
