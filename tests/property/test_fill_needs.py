"""The VRAM a fill wave waits for is priced once, by the plan (the executor never prices VRAM itself), on random pods:

(a) the plan's need per fill wave and GPU is what that wave allocates when the plan is executed
    (``plan_sim``, a model of the pod independent of the planner);
(b) the executor waits before each fill wave for exactly that free MiB: a GPU one MiB short
    holds the wave back, exactly enough lets it run, and a wave that allocates nothing does not
    poll at all. Steps are not run (only the wait is under test); nvidia-smi is a fake that
    answers what the test chooses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import given

from gpumod.core.model import DesiredPod, PodPlan, Step
from gpumod.execute import PodExecutor, StepOutcome
from plan_sim import allocations
from testkit import FakeClock
from test_plan_properties import SETTINGS, executed, worlds


@dataclass
class _Pod:
    """Answers ``gpus()`` for the wave about to run: first each GPU one MiB short of what the
    test expects the wave to wait for, then exactly that."""

    expected: list[dict[int, int]]  # per fill wave, in order
    indices: tuple[int, ...]
    wave: int = 0  # index into expected of the next fill wave
    polls: list[int] = field(default_factory=list)  # per fill wave: gpus() calls before it ran
    ran: set[int] = field(default_factory=set)  # fill waves whose steps ran

    async def gpus(self) -> dict:
        assert self.wave < len(self.expected), "nvidia-smi polled after the last fill wave"
        self.polls[self.wave] += 1
        short = 1 if self.polls[self.wave] == 1 else 0
        want = self.expected[self.wave]
        total = 10**6
        rows = [
            f"{g}, GPU-{g}, Fake GPU, {total} MiB, {total - max(0, want.get(g, 0) - short)} MiB" for g in self.indices
        ]
        return {"ok": True, "stdout": "\n".join(rows)}


class _WaitOnly(PodExecutor):
    """The executor with its steps stubbed out: the fake pod learns which fill wave comes next."""

    async def _run_step(self, step: Step) -> StepOutcome:
        pod: _Pod = self.agent  # type: ignore[assignment]
        if step.phase == "fill":
            pod.ran.add(step.wave)
            pod.wave = len(pod.ran)
        return StepOutcome(step, "ok")


def _waits(pod: DesiredPod, pod_plan: PodPlan, expected: list[dict[int, int]]) -> tuple[list[int], str]:
    gpus = tuple(sorted({g.index for g in pod.gpus} | {g for need in expected for g in need}))
    fake = _Pod(expected, gpus, polls=[0] * len(expected))
    executor = _WaitOnly(agent=fake, ctx=None, desired=pod, clock=FakeClock(), vram_release_timeout_s=5)  # type: ignore[arg-type]
    run = asyncio.run(executor.run(pod_plan))
    return fake.polls, run.error


@SETTINGS
@given(worlds())
def test_the_executor_waits_for_exactly_the_need_the_plan_priced(world) -> None:
    for pod, seen, pod_plan in executed(world):
        fill_waves = sorted({s.wave for s in pod_plan.steps if s.phase == "fill"})
        expected = allocations(pod, seen, pod_plan)
        assert [pod_plan.need_before(w) for w in fill_waves] == expected  # (a)
        polls, error = _waits(pod, pod_plan, expected)
        assert not error, error
        assert polls == [2 if need else 0 for need in expected]  # (b)
