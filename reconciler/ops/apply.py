"""``apply``, ``down`` and ``apply FILE`` (a saved plan): observe → plan → execute until converged.

Each pass re-reads the specs and re-observes every selected pod. Progress goes out as events
(``gpumod.ops.events``); the answer is a frozen ``ApplyResult`` carrying every plan that ran and
every step's outcome, with its JSON shape (``to_json``) shared by all faces.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncContextManager, Callable, Sequence

from gpumod.core.model import DesiredPod, Plan, PodPlan
from gpumod.errors import GpumodError, InfeasibleError, Problem, SpecError, StalePlanError
from gpumod.execute import PodExecutor, PodRun, StepOutcome
from gpumod.logconfig import bound_reconcile_id, get_logger
from gpumod.ops.events import (
    NullReporter,
    Note,
    PassStarted,
    PlanBuilt,
    Progress,
    Reporter,
    RunFinished,
    StepFinished,
    StepStarted,
)
from gpumod.ops.snapshot import Snapshot, observe_and_plan, select_pods
from gpumod.ports import Clock, SystemClock
from gpumod.secrets import load_secret_values, missing_secrets
from gpumod.spec import SpecSet, load_specs
from gpumod.spec.models import PodSpec
from gpumod.wiring import Fleet

if TYPE_CHECKING:
    from gpumod.saved_plan import SavedPlan  # only `apply FILE` reads saved plans

__all__ = [
    "MAX_PASSES", "ApplyResult", "StepRecord", "apply", "apply_saved", "down", "new_reconcile_id", "saved_plan_at",
]

log = get_logger("gpumod.ops.apply")

MAX_PASSES = 6


@dataclass(frozen=True)
class StepRecord:
    """One step that ended, on its pod."""

    pod: str
    outcome: StepOutcome

    def to_json(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "pod": self.pod,
            "action": o.step.action,
            "service": o.step.service,
            "status": o.status,
            "message": o.message,
            "seconds": round(o.seconds, 3),
        }


@dataclass(frozen=True)
class ApplyResult:
    """What an apply run did: its plans, every step's outcome, the last snapshot, its problems."""

    converged: bool
    passes: int
    runs: tuple[PodRun, ...] = ()
    final: Snapshot | None = None
    problems: tuple[str, ...] = ()
    down: bool = False  # a `gpumod down` run: the goal was no services at all
    plans: tuple[Plan, ...] = ()  # every plan that was about to run, in order
    steps: tuple[StepRecord, ...] = ()  # every step that ended, in the order they ended

    @property
    def exit_code(self) -> int:
        return 0 if self.converged and not self.problems else 1

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "converged": self.converged,
            "passes": self.passes,
            "plans": [p.to_json() for p in self.plans],
            "steps": [s.to_json() for s in self.steps],
            "problems": list(self.problems),
        }
        if self.down:
            found["down"] = True
        return found


@dataclass
class _Run:
    """The result being built while the run goes on (frozen into an ApplyResult at the end)."""

    down: bool = False
    converged: bool = False
    passes: int = 0
    runs: list[PodRun] = field(default_factory=list)
    final: Snapshot | None = None
    problems: list[str] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)

    def frozen(self) -> ApplyResult:
        return ApplyResult(
            self.converged, self.passes, tuple(self.runs), self.final, tuple(self.problems), self.down,
            tuple(self.plans), tuple(self.steps),
        )


async def apply(
    spec_dir: str | Path,
    pod_names: Sequence[str] | None = None,
    *,
    confirm: Callable[[Plan], bool] = lambda plan: True,
    reporter: Reporter | None = None,
    clock: Clock | None = None,
    empty: bool = False,
    max_passes: int = MAX_PASSES,
    fleet: Fleet | None = None,
) -> ApplyResult:
    """Observe → plan → execute until the plan is empty (converged) or a permanent failure.

    Raises SpecError / InfeasibleError before touching anything; returns an ApplyResult otherwise
    (also sent as ``RunFinished``). With ``empty`` every managed service on the selected pods is
    stopped (``down``). ``fleet``: a kept fleet (``watch``) whose connections this run reuses; by
    default the run opens its own.
    """
    reporter = reporter or NullReporter()
    clock = clock or SystemClock()
    run = _Run(down=empty)
    failed_once: set[tuple[str, str]] = set()
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    with bound_reconcile_id(new_reconcile_id()):
        async with _locked_run(fleet, pods, spec_dir) as fleet:  # one connection and one lock per pod for the run
            for pass_no in range(1, max_passes + 1):
                run.passes = pass_no
                if pass_no > 1:
                    specs = load_specs(spec_dir)
                done = await _one_pass(
                    fleet, specs, pods, pass_no, run, failed_once,
                    confirm=confirm, reporter=reporter, clock=clock, empty=empty, last=pass_no == max_passes,
                )
                if done:
                    break
            else:
                run.problems.append(f"not converged after {max_passes} passes")
    result = run.frozen()
    reporter.event(RunFinished(result))
    return result


async def down(
    spec_dir: str | Path,
    pod_names: Sequence[str] | None = None,
    *,
    confirm: Callable[[Plan], bool] = lambda plan: True,
    reporter: Reporter | None = None,
    clock: Clock | None = None,
) -> ApplyResult:
    """Stop every managed service on the selected pods (an apply whose goal is nothing)."""
    return await apply(spec_dir, pod_names, confirm=confirm, reporter=reporter, clock=clock, empty=True)


def new_reconcile_id() -> str:
    """The id every log line of one apply run carries (bound as a structlog context variable)."""
    return uuid.uuid4().hex[:8]


def _locked_run(fleet: Fleet | None, pods: list[PodSpec], spec_dir: str | Path) -> AsyncContextManager[Fleet]:
    """The fleet of one locked run: a fresh one, or a kept one (``watch``) with locks per run."""
    return Fleet(pods, lock=True, specs=str(spec_dir)) if fleet is None else fleet.kept_run(pods)


async def _one_pass(
    fleet: Fleet,
    specs: SpecSet,
    pods: list[PodSpec],
    pass_no: int,
    run: _Run,
    failed_once: set[tuple[str, str]],
    *,
    confirm: Callable[[Plan], bool],
    reporter: Reporter,
    clock: Clock,
    empty: bool,
    last: bool,
) -> bool:
    """One observe → plan → execute pass; True when the apply run is over."""
    fleet.check_locks()
    reporter.event(PassStarted(pass_no, tuple(p.name for p in pods)))
    snap = await observe_and_plan(fleet, specs, pods, empty=empty)
    observed, desired, plan = snap.observed, snap.desired, snap.plan
    run.final = snap
    log.info("plan.built", pass_no=pass_no, changes=plan.changes, fits=plan.fits)
    infeasible = [p.infeasible for p in plan.pods if p.infeasible is not None]
    if infeasible:
        if pass_no == 1:
            raise InfeasibleError(infeasible)
        run.problems.append("the desired state stopped fitting during apply; nothing more was done")
        return True
    starting = [(o.name, s.name) for o in observed for s in o.services if s.status == "starting"]
    if plan.changes == 0:
        if starting and not last:
            reporter.event(Note(f"waiting for {', '.join(s for _, s in starting)} to become ready"))
            await clock.sleep(1.0)
            return False
        _leftovers(run, snap)
        run.converged = not starting and not run.problems
        return True
    secrets = _secrets_for(plan, desired)  # a missing secret fails here, before anything is touched
    run.plans.append(plan)
    reporter.event(PlanBuilt(plan, pass_no))
    if pass_no == 1 and not confirm(plan):
        run.problems.append("apply cancelled; nothing was touched")
        return True
    runs = await _execute_plan(fleet, snap, plan, clock, reporter, secrets, run)
    run.runs.extend(runs)
    for pod_run in runs:
        for outcome in pod_run.failed:
            key = (pod_run.pod, outcome.step.service)
            if key in failed_once and outcome.status == "failed":
                run.problems.append(
                    f"pod {pod_run.pod}: {outcome.step.action} {outcome.step.service} failed again: {outcome.message}"
                )
            failed_once.add(key)
        if pod_run.error:
            run.problems.append(f"pod {pod_run.pod}: {pod_run.error}")
    return any(r.error for r in runs) or bool(run.problems)


def _leftovers(run: _Run, snap: Snapshot) -> None:
    """What keeps an otherwise finished run from converging: degraded services, unreached pods."""
    for pod_plan in snap.plan.pods:
        for d in pod_plan.deferred:
            run.problems.append(f"pod {pod_plan.pod}: {d.service} is degraded: {d.reason}")
    for o in snap.unreachable:
        run.problems.append(f"pod {o.name} was not reconciled: {o.why_unreachable}")


async def apply_saved(
    saved: SavedPlan,
    *,
    plan_file: str = "",
    reporter: Reporter | None = None,
    clock: Clock | None = None,
) -> ApplyResult:
    """Run exactly the steps of a saved plan, in one pass, then observe once more to report.

    Refused with ``StalePlanError`` (before anything is touched, with the locks held while
    checking) when the specs or any pod's observation differ from what the plan was made from.
    """
    reporter = reporter or NullReporter()
    clock = clock or SystemClock()
    run = _Run(passes=1)
    specs = load_specs(saved.spec_dir)
    pods = select_pods(specs, saved.pods)
    with bound_reconcile_id(new_reconcile_id()):
        async with Fleet(pods, lock=True) as fleet:
            fleet.check_locks()
            reporter.event(PassStarted(1, tuple(p.name for p in pods)))
            snap = await observe_and_plan(fleet, specs, pods)
            run.final = snap
            changes = saved.changes_since(pods, snap.desired, snap.observed)
            if changes:
                log.info("saved_plan.stale", changes=changes)
                raise StalePlanError(changes, plan_file=plan_file, spec_dir=saved.spec_dir)
            plan = saved.to_plan()
            log.info("plan.loaded", changes=plan.changes, fingerprint=plan.fingerprint)
            if plan.changes:
                secrets = _secrets_for(plan, snap.desired)
                run.plans.append(plan)
                reporter.event(PlanBuilt(plan, 1))
                runs = await _execute_plan(fleet, snap, plan, clock, reporter, secrets, run)
                run.runs.extend(runs)
                for pod_run in runs:
                    for outcome in pod_run.failed:
                        run.problems.append(
                            f"pod {pod_run.pod}: {outcome.step.action} {outcome.step.service} {outcome.status}"
                            + (f": {outcome.message}" if outcome.message else "")
                        )
                    if pod_run.error:
                        run.problems.append(f"pod {pod_run.pod}: {pod_run.error}")
                run.final = await observe_and_plan(fleet, specs, pods)
            after = run.final.plan
            _leftovers(run, run.final)
            if after.changes and not run.problems:
                run.problems.append(
                    f"{after.changes} change(s) still pending after the saved plan ran; "
                    f"run `gpumod plan {saved.spec_dir}` to see them"
                )
            run.converged = not run.problems
    result = run.frozen()
    reporter.event(RunFinished(result))
    return result


def saved_plan_at(path: str | Path, pod_names: Sequence[str] | None = None) -> SavedPlan | None:
    """The saved plan ``path`` names (``apply plan.json``), or None for a spec directory."""
    from gpumod.saved_plan import is_saved_plan, load_saved_plan

    if not is_saved_plan(Path(path)):
        return None
    if pod_names:
        raise GpumodError(
            f"{path} is a saved plan: it carries its own pod selection, --pod does not apply",
            hint="drop --pod, or make a plan for those pods with `gpumod plan DIR --pod P --out FILE`",
        )
    return load_saved_plan(Path(path))


def _secrets_for(plan: Plan, desired: Sequence[DesiredPod]) -> dict[str, dict[str, dict[str, str]]]:
    """Secret values of every service the plan starts, per pod; problems of all of them at once."""
    by_pod = {d.name: d for d in desired}
    found: dict[str, dict[str, dict[str, str]]] = {}
    problems: list[Problem] = []
    hint = ""
    for pod_plan in plan.pods:
        for step in pod_plan.steps:
            svc = by_pod[pod_plan.pod].service(step.service) if pod_plan.pod in by_pod else None
            if step.action not in ("start", "restart") or svc is None or not svc.spec.secrets:
                continue
            try:
                values = load_secret_values(svc.spec)
            except SpecError as err:
                problems.extend(err.problems)
                hint = err.hint
                continue
            found.setdefault(pod_plan.pod, {})[svc.name] = values
    if problems:
        raise SpecError(problems, hint=hint, summary=missing_secrets(len(problems)))
    return found


async def _execute_plan(
    fleet: Fleet,
    snap: Snapshot,
    plan: Plan,
    clock: Clock,
    reporter: Reporter,
    secrets: dict[str, dict[str, dict[str, str]]],
    run: _Run,
) -> list[PodRun]:
    """Every pod's steps, pods in parallel."""
    return list(
        await asyncio.gather(
            *(
                _execute_pod(fleet, snap, pod_plan, clock, reporter, secrets.get(pod_plan.pod, {}), run)
                for pod_plan in plan.pods
                if pod_plan.steps
            )
        )
    )


async def _execute_pod(
    fleet: Fleet,
    snap: Snapshot,
    pod_plan: PodPlan,
    clock: Clock,
    reporter: Reporter,
    secrets: dict[str, dict[str, str]],
    run: _Run,
) -> PodRun:
    handle = fleet.handles[pod_plan.pod]
    desired = snap.desired_pod(pod_plan.pod)
    assert desired is not None
    observed = snap.observed_pod(pod_plan.pod)
    templates = Path(snap.specs.root) / "templates"
    supervisor = handle.supervisor_for(
        dict(observed.init) if observed else {}, template_dir=templates if templates.is_dir() else None
    )
    pod = pod_plan.pod

    def report(event: str, item: Any) -> None:
        if event == "done" and isinstance(item, StepOutcome):
            run.steps.append(StepRecord(pod, item))
            reporter.event(StepFinished(pod, item))
        elif event == "start":
            reporter.event(StepStarted(pod, item))
        elif event == "progress":
            step, ev = item
            reporter.event(Progress(pod, step, ev.kind, ev.done, ev.total, ev.rate, ev.file))

    provisioning = [s for s in pod_plan.steps if s.phase == "provision"]
    prov = snap.provision.pod(pod) if snap.provision else None
    if provisioning and prov is not None:
        from gpumod.provision import run_provision  # pods with setup: only (start-up time of the others)

        outcomes = await run_provision(handle.transport, prov, provisioning, report)
        failed = [o for o in outcomes if o.status != "ok"]
        rest = tuple(s for s in pod_plan.steps if s.phase != "provision")
        if failed:  # starts need what failed: nothing more on this pod this run
            for step in rest:
                outcomes.append(StepOutcome(step, "skipped", "the pod's set-up or a download failed"))
                report("done", outcomes[-1])
            return PodRun(pod, outcomes, error=f"{failed[0].step.detail} failed: {failed[0].message}")
        after = await _pod_executor(handle, desired, clock, report, secrets, supervisor).run(
            replace(pod_plan, steps=rest)
        )
        return PodRun(pod, outcomes + after.outcomes, after.error)
    return await _pod_executor(handle, desired, clock, report, secrets, supervisor).run(pod_plan)


def _pod_executor(handle: Any, desired: DesiredPod, clock: Clock, report: Callable[[str, Any], None],
                  secrets: dict[str, dict[str, str]], supervisor: Any) -> PodExecutor:
    return PodExecutor(
        agent=handle.agent,
        ctx=handle.ctx,
        desired=desired,
        clock=clock,
        sim_env=handle.sim,
        vram_release_timeout_s=handle.spec.vram_release_timeout_s,
        report=report,
        secrets=secrets,
        supervisor=supervisor,
        unit_env=handle.unit_env,
    )
