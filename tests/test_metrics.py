"""WatchMetrics without a server: what a pass records, and the age of the last converged pass
computed when scraped (an injected clock)."""

from __future__ import annotations

from gpumod.ops.apply import ApplyResult
from gpumod.ops.events import StepFinished, StepStarted
from gpumod.ops.snapshot import Snapshot
from gpumod.core.model import Deferred, GpuInfo, ObservedPod, ObservedService, Plan, PodPlan, Step
from gpumod.execute import StepOutcome
from gpumod.metrics import WatchMetrics


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def value(m: WatchMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def snapshot() -> Snapshot:
    obs = ObservedPod(
        "box",
        gpus=(GpuInfo(0, "RTX", 24564, used_mb=1000),),
        services=(ObservedService("a", "running"), ObservedService("b", "failed")),
    )
    plan = Plan((PodPlan("box", True, deferred=(Deferred("b", "crash-looping"),)),))
    return Snapshot(specs=None, pods=[], desired=(), observed=(obs,), plan=plan)  # type: ignore[arg-type]


def test_seconds_since_last_converged_pass_is_computed_at_scrape_time() -> None:
    clock = Clock()
    m = WatchMetrics(clock=clock)
    clock.now = 130.0
    assert value(m, "gpumod_seconds_since_last_converged_pass") == 30.0  # since watch started
    m.record_pass(ApplyResult(converged=False, passes=1, problems=("x",)), 2.0)
    clock.now = 140.0
    assert value(m, "gpumod_seconds_since_last_converged_pass") == 40.0
    m.record_pass(ApplyResult(converged=True, passes=1), 1.0)
    clock.now = 145.0
    assert value(m, "gpumod_seconds_since_last_converged_pass") == 5.0
    m.record_pass(None, 0.5)  # invalid specs
    assert value(m, "gpumod_passes_total", outcome="converged") == 1
    assert value(m, "gpumod_passes_total", outcome="not_converged") == 1
    assert value(m, "gpumod_passes_total", outcome="error") == 1
    assert value(m, "gpumod_pass_duration_seconds_count") == 3
    assert value(m, "gpumod_pass_duration_seconds_sum") == 3.5


def test_a_pass_records_vram_services_and_degraded_and_steps_count_as_they_end() -> None:
    m = WatchMetrics(clock=Clock())
    seen: list[str] = []

    class Inner:
        def event(self, e):
            seen.append(type(e).__name__)

    reporter = m.reporter(Inner())
    step = Step("box", "start", "a", "not running", "fill", 1)
    reporter.event(StepStarted("box", step))
    reporter.event(StepFinished("box", StepOutcome(step, "ok")))
    reporter.event(StepFinished("box", StepOutcome(step, "failed", "boom")))
    assert seen == ["StepStarted", "StepFinished", "StepFinished"]  # the console still gets every event
    assert value(m, "gpumod_steps_total", pod="box", action="start", outcome="ok") == 1
    assert value(m, "gpumod_steps_total", pod="box", action="start", outcome="failed") == 1

    m.record_pass(ApplyResult(converged=False, passes=1, final=snapshot(), problems=("b degraded",)), 1.0)
    assert value(m, "gpumod_gpu_memory_used_bytes", pod="box", gpu="0") == 1000 * 1024 * 1024
    assert value(m, "gpumod_gpu_memory_total_bytes", pod="box", gpu="0") == 24564 * 1024 * 1024
    assert value(m, "gpumod_services", pod="box", state="running") == 1
    assert value(m, "gpumod_services", pod="box", state="failed") == 1
    assert value(m, "gpumod_services", pod="box", state="sleeping") == 0
    assert value(m, "gpumod_degraded_services", pod="box") == 1
    assert value(m, "gpumod_pod_up", pod="box") == 1
