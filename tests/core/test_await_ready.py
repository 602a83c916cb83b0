"""The executor waits for a service it started with the same reading of the agent's answer as
``gpumod status`` (``observe.service_status``): what status calls failed fails the start at
once, what it calls sleeping is not yet awake."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from gpumod.core.model import DesiredPod, GpuInfo
from gpumod.errors import HealthTimeoutError, StepError
from gpumod.execute import CHANGED_PAUSE_S, HEALTH_WAIT_S, PodExecutor
from gpumod.spec.resolved import ResolvedService
from testkit import FakeClock

GPU = GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564)
SPEC = ResolvedService(name="chat", driver="vllm", port=7071, model="m", sleep="l1")
META = {"driver": "vllm", "sleep": "l1", "probes": [{"key": "health", "path": "/health"}]}
AWAKE = {"health": {"status": 200, "body": ""}, "sleep": {"status": 200, "body": '{"is_sleeping": false}'}}
ASLEEP = {"health": {"status": 200, "body": ""}, "sleep": {"status": 200, "body": '{"is_sleeping": true}'}}


@dataclass
class _Agent:
    entries: list[dict]  # one per poll; the last one repeats
    polls: int = 0

    async def observe(self, **kw) -> dict:
        entry = self.entries[min(self.polls, len(self.entries) - 1)]
        self.polls += 1
        return {"services": {"chat": entry}}


def _wait(entries: list[dict], *, awake: bool = True, timeout: float = 5.0) -> int:
    agent = _Agent(entries)
    desired = DesiredPod("box", "m", (GPU,), 0, 1, ())
    executor = PodExecutor(agent=agent, ctx=None, desired=desired, clock=FakeClock())  # type: ignore[arg-type]
    asyncio.run(executor._await_ready(SPEC, awake=awake, timeout=timeout))
    return agent.polls


def test_waits_until_awake_and_ready() -> None:
    refused = {"alive": True, "meta": META, "probes": {"health": {"status": 0}}}
    asleep = {"alive": True, "meta": META, "probes": ASLEEP}
    awake = {"alive": True, "meta": META, "probes": AWAKE}
    assert _wait([refused, asleep, awake]) == 3
    assert _wait([refused, asleep], awake=False) == 2  # asleep is ready when it may stay asleep


def test_a_crash_looping_unit_fails_the_start_at_once() -> None:
    # alive (systemd just restarted it) but restarted again and again: status says failed
    looping = {"alive": True, "meta": META, "probes": {"health": {"status": 0}},
               "unit": {"crash_loop": True, "nrestarts": 4}}
    with pytest.raises(StepError, match="the process exited while starting"):
        _wait([looping])


def test_a_dead_process_and_an_error_answer() -> None:
    with pytest.raises(StepError, match="the process exited while starting"):
        _wait([{"alive": False, "meta": META}])
    with pytest.raises(StepError, match="unhealthy: /health answered 500"):
        _wait([{"alive": True, "meta": META, "probes": {"health": {"status": 500}}}])


def test_timeout_says_what_it_saw_last() -> None:
    loading = {"alive": True, "meta": META, "probes": {"health": {"status": 0}}}
    with pytest.raises(HealthTimeoutError, match=r"not healthy after 1 s \(not listening yet"):
        _wait([loading], timeout=1.0)


@dataclass
class _WaitingAgent:
    """An agent that waits on the pod: each entry comes with its ``seen`` digest."""

    entries: list[tuple[str, dict]]  # (seen, entry) per poll; the last one repeats
    asked: list[tuple[str, float]] = field(default_factory=list)  # (unchanged digest, wait_s) per poll

    async def observe(self, *, unchanged: dict, wait_s: float, **kw) -> dict:
        self.asked.append((unchanged["chat"], wait_s))
        seen, entry = self.entries[min(len(self.asked) - 1, len(self.entries) - 1)]
        return {"services": {"chat": {**entry, "seen": seen}}}


def test_polls_after_the_first_wait_on_the_pod_for_a_change() -> None:
    refused = {"alive": True, "meta": META, "probes": {"health": {"status": 0}}}
    asleep = {"alive": True, "meta": META, "probes": ASLEEP}
    awake = {"alive": True, "meta": META, "probes": AWAKE}
    agent = _WaitingAgent([("a", refused), ("a", refused), ("b", asleep), ("c", awake)])
    clock = FakeClock()
    desired = DesiredPod("box", "m", (GPU,), 0, 1, ())
    executor = PodExecutor(agent=agent, ctx=None, desired=desired, clock=clock)  # type: ignore[arg-type]
    asyncio.run(executor._await_ready(SPEC, awake=True, timeout=5.0))
    # the first poll has nothing to compare with; each later one hands back the last digest
    assert [u for u, _ in agent.asked] == ["", "a", "a", "b"]
    assert [w for _, w in agent.asked] == [0.0, HEALTH_WAIT_S, HEALTH_WAIT_S, HEALTH_WAIT_S]
    # a changed reading that is not ready is followed by a pause that doubles; an unchanged one
    # (the pod already waited) by none
    assert clock.t == pytest.approx(CHANGED_PAUSE_S[0] * 3)


def test_a_wait_on_the_pod_never_outlasts_the_startup_timeout() -> None:
    loading = {"alive": True, "meta": META, "probes": {"health": {"status": 0}}}
    agent = _WaitingAgent([("a", loading)])
    clock = FakeClock()
    desired = DesiredPod("box", "m", (GPU,), 0, 1, ())
    executor = PodExecutor(agent=agent, ctx=None, desired=desired, clock=clock)  # type: ignore[arg-type]
    clock.t = 100.0

    async def waits() -> None:
        agent_observe = agent.observe

        async def observe(**kw) -> dict:  # the pod waits what it was asked
            answer = await agent_observe(**kw)
            clock.t += kw["wait_s"]
            return answer

        agent.observe = observe  # type: ignore[method-assign]
        await executor._await_ready(SPEC, awake=True, timeout=2.5)

    with pytest.raises(HealthTimeoutError):
        asyncio.run(waits())
    assert [w for _, w in agent.asked] == [0.0, HEALTH_WAIT_S, HEALTH_WAIT_S, pytest.approx(0.5 - CHANGED_PAUSE_S[0])]
