"""footprint(): the first figure that applies (vram_mb, util x total, estimate), and the residual asleep."""

from __future__ import annotations

import dataclasses

import pytest

from gpumod.core.footprint import footprint, sizing_gpu
from gpumod.core.model import Footprint, GpuInfo
from gpumod.errors import SpecError
from gpumod.spec.resolved import ResolvedService

RTX = GpuInfo(index=0, name="NVIDIA GeForce RTX 4090", total_mb=24564)
H100 = GpuInfo(index=0, name="NVIDIA H100 80GB HBM3", total_mb=81559)
BASE = ResolvedService(name="s", driver="vllm", port=1, source="specs/s.yaml:4")


def svc(**fields) -> ResolvedService:
    return dataclasses.replace(BASE, **fields)


def test_declared_vram_wins_over_everything() -> None:
    s = svc(vram_mb=7000, gpu_memory_utilization=0.35, weights_mb=4000, kv_mb_per_1k=10, context=1024)
    assert footprint(s, RTX) == Footprint(awake_mb=7000, asleep_mb=7000)


def test_vllm_utilization_is_a_share_of_the_gpus_total() -> None:
    s = svc(gpu_memory_utilization=0.9, weights_mb=1000)
    assert footprint(s, RTX).awake_mb == 22108  # ceil(0.9 * 24564)
    assert footprint(s, H100).awake_mb == 73404  # ceil(0.9 * 81559): the same spec, a bigger GPU


def test_estimate_from_weights_kv_and_context() -> None:
    s = svc(driver="llamacpp", weights_mb=13600, kv_mb_per_1k=170, context=32768)
    assert footprint(s, RTX).awake_mb == 13600 + 5571 + 512  # ceil(170 * 32.768) = 5571


def test_estimate_without_kv_figure_counts_weights_and_overhead() -> None:
    assert footprint(svc(weights_mb=1090), RTX).awake_mb == 1602


def test_no_figure_at_all_is_a_spec_error_at_the_service() -> None:
    for s in (svc(), svc(weights_mb=100, kv_mb_per_1k=10)):  # KV per token but no context: no estimate
        with pytest.raises(SpecError) as info:
            footprint(s, RTX)
        assert [str(p) for p in info.value.problems] == [
            "specs/s.yaml:4: cannot tell the VRAM footprint of s on a NVIDIA GeForce RTX 4090; set vram_mb"
        ]


@pytest.mark.parametrize(("sleep", "asleep"), [("l1", 600), ("l2", 400), ("router", 300), ("none", 7000)])
def test_residual_by_sleep_kind(sleep: str, asleep: int) -> None:
    assert footprint(svc(vram_mb=7000, sleep=sleep), RTX) == Footprint(7000, asleep)


def test_declared_residual_wins_and_never_exceeds_awake() -> None:
    assert footprint(svc(vram_mb=7000, sleep="l1", sleep_vram_mb=1200), RTX).asleep_mb == 1200
    assert footprint(svc(vram_mb=250, sleep="l1"), RTX).asleep_mb == 250
    assert footprint(svc(vram_mb=7000, sleep="l2", sleep_vram_mb=0), RTX).wake_delta_mb == 7000


def test_a_smaller_context_changes_only_an_estimate() -> None:
    """What the context alternative relies on: it is re-priced through footprint()."""
    estimated = svc(weights_mb=4000, kv_mb_per_1k=170, context=32768)
    halved = dataclasses.replace(estimated, context=16384)
    assert footprint(estimated, RTX).awake_mb - footprint(halved, RTX).awake_mb == 5571 - 2786
    fixed = svc(vram_mb=19100, kv_mb_per_1k=170, context=32768)  # a preset config fixes vram_mb
    assert footprint(dataclasses.replace(fixed, context=8192), RTX) == footprint(fixed, RTX)
    share = svc(gpu_memory_utilization=0.5, kv_mb_per_1k=100, context=8192)  # vLLM keeps util x total
    assert footprint(dataclasses.replace(share, context=2048), RTX) == footprint(share, RTX)


def test_sizing_gpu_is_the_first_pinned_else_the_largest() -> None:
    small, big, big2 = RTX, dataclasses.replace(H100, index=1), dataclasses.replace(H100, index=2)
    assert sizing_gpu((small, big, big2), None) == big
    assert sizing_gpu((small, big, big2), (0, 1)) == small
    assert sizing_gpu((small, big), (7,)) == big  # a pin the pod lacks: the desired state reports it
