"""The executor's wait before a fill wave: for the plan's need, and a timeout that says what is
short and why (no "stopped/sleeping services" when nothing was stopped, the pod named once)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gpumod.core.model import DesiredPod, FillNeed, GpuInfo, PodPlan, Step
from gpumod.execute import PodExecutor, StepOutcome
from testkit import FakeClock

GPU = GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564)


@dataclass
class _Pod:
    free_mb: int
    ran: list[str] = field(default_factory=list)

    async def gpus(self) -> dict:
        return {"ok": True, "stdout": f"0, GPU-0, {GPU.name}, {GPU.total_mb} MiB, {GPU.total_mb - self.free_mb} MiB"}


class _Steps(PodExecutor):
    async def _run_step(self, step: Step) -> StepOutcome:
        self.agent.ran.append(f"{step.action} {step.service}")  # type: ignore[attr-defined]
        return StepOutcome(step, "ok")


def _run(pod_plan: PodPlan, free_mb: int) -> tuple[list[str], str, list[StepOutcome]]:
    fake = _Pod(free_mb)
    desired = DesiredPod("sim-box", "rag", (GPU,), 512, 1, ())
    executor = _Steps(agent=fake, ctx=None, desired=desired, clock=FakeClock(), vram_release_timeout_s=60)  # type: ignore[arg-type]
    run = asyncio.run(executor.run(pod_plan))
    return fake.ran, run.error, run.outcomes


def _fill(wave: int, service: str, **kw) -> Step:
    return Step("sim-box", "start", service, "not running", "fill", wave, (0,), **kw)


def test_each_fill_wave_waits_only_for_what_it_allocates() -> None:
    # a cold start into a mode with sleeping members: the serial start of hyde needs 4913 MiB,
    # not the sum of every awake footprint of the fill phase
    steps = (_fill(1, "hyde", level="l1", sleep_after=True), _fill(2, "chat"))
    needs = (FillNeed(1, 0, 4913), FillNeed(2, 0, 6000))
    ran, error, _ = _run(PodPlan("sim-box", True, steps, fill_needs=needs), free_mb=6000)
    assert (ran, error) == (["start hyde", "start chat"], "")


def test_nothing_released_and_no_room_names_the_gpu_once_and_blames_no_stop() -> None:
    steps = (_fill(1, "embedding"), _fill(1, "embedding-code"), _fill(2, "chat"))
    needs = (FillNeed(1, 0, 3000), FillNeed(2, 0, 5000))
    ran, error, outcomes = _run(PodPlan("sim-box", True, steps, fill_needs=needs), free_mb=2000)
    assert ran == []
    assert error == (
        "GPU 0 has 2000 MiB free but needs 3000 MiB for embedding, embedding-code; nothing was stopped "
        "or put to sleep to make room (waited 60 s): check `nvidia-smi` on the pod for processes gpumod "
        "does not manage"
    )
    assert [(o.step.service, o.status, o.message) for o in outcomes] == [
        (s.service, "skipped", "VRAM was not released") for s in steps
    ]


def test_a_later_wave_short_after_stops_says_what_it_waited_for() -> None:
    stop = Step("sim-box", "stop", "old", "not in mode rag", "free", 1, (0,))
    steps = (stop, _fill(1, "embedding"), _fill(2, "chat"))
    needs = (FillNeed(1, 0, 1000), FillNeed(2, 0, 5000))
    ran, error, _ = _run(PodPlan("sim-box", True, steps, fill_needs=needs), free_mb=2000)
    assert ran == ["stop old", "start embedding"]
    assert error == (
        "GPU 0 has 2000 MiB free but needs 5000 MiB for chat; waited 60 s for stopped/sleeping services "
        "to release VRAM: check `nvidia-smi` on the pod for processes that did not exit"
    )


class _ReadyWithGpus(_Steps):
    """Each step ends on a health poll that brought the GPUs (``free_after`` MiB free)."""

    free_after: int = 0

    async def _run_step(self, step: Step) -> StepOutcome:
        outcome = await super()._run_step(step)
        self._gpus_after = await _Pod(self.free_after).gpus()
        return outcome


def _run_carried(pod_plan: PodPlan, free_mb: int, free_after: int) -> tuple[list[str], str]:
    fake = _Pod(free_mb)
    desired = DesiredPod("sim-box", "rag", (GPU,), 512, 1, ())
    executor = _ReadyWithGpus(agent=fake, ctx=None, desired=desired, clock=FakeClock(), vram_release_timeout_s=60)  # type: ignore[arg-type]
    executor.free_after = free_after
    polls: list[int] = []
    gpus = fake.gpus

    async def counted() -> dict:
        polls.append(1)
        return await gpus()

    fake.gpus = counted  # type: ignore[method-assign]
    run = asyncio.run(executor.run(pod_plan))
    fake.ran.append(f"{len(polls)} polls")
    return fake.ran, run.error


def test_a_wave_after_a_single_step_reads_the_gpus_that_step_ended_with() -> None:
    steps = (_fill(1, "embedding"), _fill(2, "chat"))
    needs = (FillNeed(1, 0, 3000), FillNeed(2, 0, 5000))
    # the reading embedding's start ended with shows room: wave 2 needs no poll of its own
    assert _run_carried(PodPlan("sim-box", True, steps, fill_needs=needs), 9000, 6000) == (
        ["start embedding", "start chat", "1 polls"], "")
    # it shows too little: wave 2 polls as before (and finds the room)
    assert _run_carried(PodPlan("sim-box", True, steps, fill_needs=needs), 9000, 4000) == (
        ["start embedding", "start chat", "2 polls"], "")


def test_a_wave_of_several_steps_never_passes_its_readings_on() -> None:
    steps = (_fill(1, "embedding"), _fill(1, "embedding-code"), _fill(2, "chat"))
    needs = (FillNeed(1, 0, 3000), FillNeed(2, 0, 5000))
    ran, error = _run_carried(PodPlan("sim-box", True, steps, fill_needs=needs), 9000, 6000)
    assert (ran[-1], error) == ("2 polls", "")


def test_the_first_fill_wave_reads_the_gpus_a_lone_sleep_of_phase_free_ended_with() -> None:
    steps = (Step("sim-box", "sleep", "glm-code", "sleeping in mode rag", "free", 1, (0,), level="router"),
             _fill(1, "hyde"))
    needs = (FillNeed(1, 0, 5000),)
    assert _run_carried(PodPlan("sim-box", True, steps, fill_needs=needs), 1000, 6000) == (
        ["sleep glm-code", "start hyde", "0 polls"], "")
