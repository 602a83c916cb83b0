"""The operations layer called in-process, as the MCP server and the TUI will call it: one apply on
the sim pod reports its progress as typed events in order, and its result carries the plans and
step outcomes those events announced; status figures come from ops (the CLI only formats them)."""

from __future__ import annotations

import asyncio
import json

import pytest

from e2e_helpers import Gpumod
from gpumod.ops import apply as ops_apply
from gpumod.ops import status as ops_status
from gpumod.ops.events import Event, PassStarted, PlanBuilt, RunFinished, StepFinished, StepStarted

pytestmark = pytest.mark.e2e
POD = "sim-box"


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def event(self, e: Event) -> None:
        self.events.append(e)


def test_apply_emits_typed_events_and_returns_its_plans_and_steps(gpumod: Gpumod, monkeypatch) -> None:
    monkeypatch.setenv("GPUMOD_HOME", str(gpumod.home))
    seen = Collect()
    result = asyncio.run(ops_apply.apply(gpumod.specs, reporter=seen))
    assert result.converged and result.exit_code == 0, result.problems

    kinds = [type(e) for e in seen.events]
    assert kinds[0] is PassStarted and kinds[1] is PlanBuilt and kinds[-1] is RunFinished
    assert seen.events[-1].result is result
    finished = [e for e in seen.events if isinstance(e, StepFinished)]
    started = [e for e in seen.events if isinstance(e, StepStarted)]
    assert {e.step.service for e in started} == {"embedding-code", "glm-code"}
    assert [(s.pod, s.outcome) for s in result.steps] == [(e.pod, e.outcome) for e in finished]
    assert result.plans == tuple(e.plan for e in seen.events if isinstance(e, PlanBuilt))
    as_json = result.to_json()
    assert [s["service"] for s in as_json["steps"]] == [e.outcome.step.service for e in finished]
    assert "down" not in as_json

    status = asyncio.run(ops_status.status(gpumod.specs))
    (pod,) = status.pods
    row = pod.service("glm-code")
    assert row is not None and row.state == "running" and row.vram_budget_mb and row.note == ""
    assert row.vram_used_mb > 0
    cli = json.loads(gpumod.run("status", str(gpumod.specs), "-o", "json").stdout)
    cli_row = next(r for r in cli["pods"][POD]["services"] if r["service"] == "glm-code")
    assert set(cli_row) == set(row.to_json())  # the CLI prints the ops layer's JSON shape
    assert (cli_row["vram_budget_mb"], cli_row["gpus"]) == (row.vram_budget_mb, list(row.gpus))
