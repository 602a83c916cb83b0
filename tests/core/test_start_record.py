"""After a healthy start the executor clears the failure fields of the service's record on the
pod (failures, last failure and its cause: backoff and `gpumod status` read them), and spends no
round trip on a record that has none."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from gpumod.core.model import DesiredPod, DesiredService, Footprint, GpuInfo, Step
from gpumod.drivers.base import PodContext
from gpumod.execute import PodExecutor
from gpumod.spec.resolved import ResolvedService
from testkit import FakeClock

GPU = GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564)
SPEC = ResolvedService(name="web", driver="command", port=7071, command=("srv", "--port", "{port}"))
CLEAN = {"failures": 0, "last_failure_at": None}


@dataclass
class _Pod:
    record: dict[str, Any]
    calls: list[str] = field(default_factory=list)

    async def start(self, launch: Any, secret_env: Any = None) -> dict:
        self.calls.append("start")
        return {}

    async def observe(self, **kw: Any) -> dict:
        self.calls.append("observe")
        meta = {**self.record, "driver": "command", "sleep": "none", "probes": [{"key": "health", "path": "/"}]}
        return {"services": {"web": {"alive": True, "meta": meta, "probes": {"health": {"status": 200}}}}}

    async def update_meta(self, name: str, **fields: Any) -> dict:
        self.calls.append("update_meta")
        self.record.update(fields)
        return self.record


def _start(record: dict[str, Any]) -> _Pod:
    pod = _Pod(dict(record))
    svc = DesiredService("web", "active", SPEC, Footprint(1000, 0))
    desired = DesiredPod("box", "m", (GPU,), 0, 1, (svc,))
    executor = PodExecutor(agent=pod, ctx=PodContext("box"), desired=desired, clock=FakeClock(),  # type: ignore[arg-type]
                           supervisor=pod)  # type: ignore[arg-type]
    outcome = asyncio.run(executor._run_step(Step("box", "start", "web", "not running", "fill", 1, (0,))))
    assert outcome.status == "ok", outcome.message
    return pod


@pytest.mark.parametrize("left", [
    {"failures": 2, "last_failure_at": 990.0},
    {"failures": 0, "last_failure_at": None, "last_error": "not healthy after 2 s"},
])
def test_a_healthy_start_clears_what_earlier_failures_left(left: dict[str, Any]) -> None:
    pod = _start(left)
    assert pod.calls[-1] == "update_meta"
    assert {k: pod.record.get(k) for k in ("failures", "last_failure_at", "last_error", "last_log_line")} == {
        "failures": 0, "last_failure_at": None, "last_error": None, "last_log_line": None,
    }


def test_a_clean_record_is_left_as_it_is() -> None:
    assert _start(CLEAN).calls == ["start", "observe"]
