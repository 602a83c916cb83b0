"""The executor waits for a service it started with the same reading of the agent's answer as
``gpumod status`` (``observe.service_status``): what status calls failed fails the start at
once, what it calls sleeping is not yet awake."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from gpumod.core.model import DesiredPod, GpuInfo
from gpumod.errors import HealthTimeoutError, StepError
from gpumod.execute import PodExecutor
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
