"""An observe that waits on the pod for a service to read differently (the executor's health
polls): it returns at once without a digest to compare with, waits while nothing changes, and
returns as soon as something does (here: the process dies), long before its wait is over."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from agent_helpers import start_server

from gpumod.drivers.agent import PodAgent


async def _observe(agent: PodAgent, **kw) -> tuple[dict, float]:
    started = time.monotonic()
    raw = await agent.observe(names=["web"], gpus=False, init=False, **kw)
    return raw["services"]["web"], time.monotonic() - started


async def test_a_health_wait_returns_when_the_service_reads_differently(agent, reaper):
    pid, _ = await start_server(agent, reaper, "web")
    plain, _ = await _observe(agent)
    assert "seen" not in plain  # only health waits ask for digests

    first, _ = await _observe(agent, unchanged={"web": ""}, wait_s=5.0)  # nothing to compare: at once
    assert first["alive"] and first["seen"]

    again, waited = await _observe(agent, unchanged={"web": first["seen"]}, wait_s=0.6)
    assert again["seen"] == first["seen"] and waited >= 0.5  # nothing changed: it waited

    async def kill_soon() -> None:
        await asyncio.sleep(0.3)
        os.kill(pid, signal.SIGKILL)

    killer = asyncio.create_task(kill_soon())
    seen, deadline = first["seen"], time.monotonic() + 20
    while True:  # on a busy machine another change may come first (a health probe timing out)
        gone, waited = await _observe(agent, unchanged={"web": seen}, wait_s=5.0)
        assert gone["seen"] != seen or waited >= 4.5  # it returns on a change, or when its wait is over
        if not gone["alive"]:
            break
        assert time.monotonic() < deadline, "the kill was never seen"
        seen = gone["seen"]
    await killer
    assert waited < 4.0  # the death ended the wait, not its 5 s


async def test_a_health_poll_can_bring_the_gpus_as_it_leaves_them(agent, reaper):
    await start_server(agent, reaper, "web")
    raw = await agent.observe(names=["web"], gpus=False, init=False, unchanged={"web": ""}, gpus_after=True)
    assert raw["gpus_after"] == await agent.gpus()  # what a VRAM poll reads (here: no nvidia-smi on PATH)
    assert "gpus_after" not in await agent.observe(names=["web"], gpus=False, init=False)
