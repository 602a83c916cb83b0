"""``gpumod setup`` (only the set-up steps of pods with ``setup:``) and ``gpumod models`` (the
model cache of each pod, with sizes), from the same observation round trip as every other verb.

Why here and not in ``apply``: ``setup`` prepares pods without starting anything (no downloads,
no starts), e.g. on a freshly rented pod before choosing models; ``models`` reads, changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from gpumod.core.model import Plan, PodPlan
from gpumod.drivers.provision import SetupFacts, setup_probe_args
from gpumod.errors import UsageError
from gpumod.execute import PodRun, StepOutcome
from gpumod.observe import observe_pod
from gpumod.ops.apply import ApplyResult, StepRecord, new_reconcile_id
from gpumod.ops.events import NullReporter, PassStarted, PlanBuilt, Progress, Reporter, RunFinished
from gpumod.ops.events import StepFinished, StepStarted
from gpumod.ops.snapshot import observe_fleet, select_pods
from gpumod.logconfig import bound_reconcile_id
from gpumod.provision import PodProvision, plan_provision, run_provision, tools_dir
from gpumod.spec import load_specs
from gpumod.spec.setup_models import PodSetup
from gpumod.wiring import Fleet

__all__ = ["CachedModel", "PodModels", "models", "setup"]


async def setup(
    spec_dir: str | Path,
    pod_names: Sequence[str] | None = None,
    *,
    confirm: Callable[[Plan], bool] = lambda plan: True,
    reporter: Reporter | None = None,
) -> ApplyResult:
    """Run only the set-up steps of the selected pods with ``setup:`` (refusals first, nothing touched)."""
    reporter = reporter or NullReporter()
    specs = load_specs(spec_dir)
    pods = [p for p in select_pods(specs, pod_names) if p.setup is not None]
    if not pods:
        raise UsageError("no selected pod has a setup: block", hint="add setup: to a Pod (see docs/specs.md)")
    with bound_reconcile_id(new_reconcile_id()):
        async with Fleet(pods, lock=True, specs=str(spec_dir)) as fleet:
            fleet.check_locks()
            reporter.event(PassStarted(1, tuple(p.name for p in pods)))
            observed = await observe_fleet(fleet)
            state_dirs = {h.name: h.agent.state_dir for h in fleet.handles.values()}
            prov = await plan_provision(pods, (), observed, state_dirs=state_dirs)  # no services: no downloads
            problems = [f"pod {o.name} was not reconciled: {o.why_unreachable}" for o in observed if not o.reachable]
            plan = Plan(tuple(PodPlan(p.pod, True, p.steps()) for p in prov.pods))
            steps: list[StepRecord] = []
            runs: list[PodRun] = []
            if plan.changes:
                reporter.event(PlanBuilt(plan, 1))
                if not confirm(plan):
                    result = ApplyResult(False, 1, problems=("setup cancelled; nothing was touched",), plans=(plan,))
                    reporter.event(RunFinished(result))
                    return result

                async def one(pp: PodProvision) -> PodRun:
                    def report(event: str, item: Any) -> None:
                        if event == "done" and isinstance(item, StepOutcome):
                            steps.append(StepRecord(pp.pod, item))
                            reporter.event(StepFinished(pp.pod, item))
                        elif event == "start":
                            reporter.event(StepStarted(pp.pod, item))
                        elif event == "progress":
                            step, ev = item
                            reporter.event(Progress(pp.pod, step, ev.kind, ev.done, ev.total, ev.rate, ev.file))

                    outcomes = await run_provision(fleet.handles[pp.pod].transport, pp, pp.steps(), report)
                    return PodRun(pp.pod, outcomes)

                runs = list(await asyncio.gather(*(one(p) for p in prov.pods if p.setup)))
                for run in runs:
                    problems += [f"pod {run.pod}: {o.step.detail} {o.status}: {o.message}" for o in run.failed]
    result = ApplyResult(not problems, 1, tuple(runs), problems=tuple(problems), plans=(plan,) if plan.changes else (),
                         steps=tuple(steps))
    reporter.event(RunFinished(result))
    return result


@dataclass(frozen=True)
class CachedModel:
    repo: str
    bytes: int
    complete: bool  # a finished download (its ref is written); else partial
    partial_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"repo": self.repo, "bytes": self.bytes, "complete": self.complete, "partial_bytes": self.partial_bytes}


@dataclass(frozen=True)
class PodModels:
    pod: str
    cache: str = ""
    free_bytes: int | None = None
    models: tuple[CachedModel, ...] = ()
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"pod": self.pod, "cache": self.cache, "free_bytes": self.free_bytes, "error": self.error,
                "models": [m.to_json() for m in self.models]}


async def models(spec_dir: str | Path, pod_names: Sequence[str] | None = None) -> tuple[PodModels, ...]:
    """The model cache of each selected pod (its ``setup:`` paths, or the pod's default HF cache)."""
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    async with Fleet(pods) as fleet:

        async def one(name: str) -> PodModels:
            handle = fleet.handles[name]
            args = setup_probe_args(handle.spec.setup or PodSetup(), tools_dir=tools_dir(handle.agent.state_dir))
            o = await observe_pod(handle.agent, setup=args)
            if not o.reachable or not isinstance(o.setup, SetupFacts):
                return PodModels(name, error=o.error or "no setup facts")
            facts: SetupFacts = o.setup
            found = tuple(
                CachedModel(r.repo, r.size, bool(r.refs), r.incomplete_bytes) for r in facts.cached
            )
            return PodModels(name, facts.hf_cache, facts.free_bytes, found)

        return tuple(await asyncio.gather(*(one(p.name) for p in pods)))

