"""An ``http`` call that writes the service's record in the same round trip (a sleep and the
sleep level it leaves): written only when every call answered ok."""

from __future__ import annotations

import pytest
from agent_helpers import start_server

from gpumod.drivers.base import HttpCall
from gpumod.errors import PodError


async def _level(agent) -> object:
    raw = await agent.observe(names=["web"], gpus=False, init=False, probe=False)
    return raw["services"]["web"]["meta"].get("sleep_level")


async def test_the_record_is_written_only_when_every_call_answered_ok(agent, reaper):
    _, port = await start_server(agent, reaper, "web")
    failing = [HttpCall("GET", "/health"), HttpCall("GET", "/status/500")]
    answers = await agent.http(port, failing, then_record=("web", {"sleep_level": "l1"}))
    assert [a.status for a in answers] == [200, 500]
    assert await _level(agent) is None

    answers = await agent.http(port, [HttpCall("GET", "/health")], then_record=("web", {"sleep_level": "l1"}))
    assert [a.status for a in answers] == [200]
    assert await _level(agent) == "l1"

    await agent.http(port, [], then_record=("web", {"sleep_level": None}))  # no call: the record alone
    assert await _level(agent) is None


async def test_a_record_that_is_not_there_fails_the_call(agent, reaper):
    _, port = await start_server(agent, reaper, "web")
    with pytest.raises(PodError, match="no record of service nope"):
        await agent.http(port, [HttpCall("GET", "/health")], then_record=("nope", {"sleep_level": "l1"}))


async def test_a_sleep_can_bring_the_gpus_as_its_calls_leave_them(agent, reaper):
    _, port = await start_server(agent, reaper, "web")
    readings: list[dict] = []
    await agent.http(port, [HttpCall("GET", "/health")], gpus_after=readings.append)
    assert readings == [await agent.gpus()]  # what a VRAM poll reads (here: no nvidia-smi on PATH)
