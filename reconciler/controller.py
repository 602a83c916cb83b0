"""The operations layer: one reconcile pass and the apply loop, as typed results.

Every interface (CLI today; MCP and TUI later) calls these functions. Each pass re-reads the
specs and re-observes every selected pod — nothing is remembered between passes that the pods
cannot tell (level-triggered, like a Kubernetes controller).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, AsyncContextManager, Callable, Iterable, Sequence

from gpumod.core.desired import build_desired
from gpumod.core.footprint import footprint
from gpumod.core.model import DesiredPod, ObservedPod, Plan, PodPlan, Step
from gpumod.core.plan import plan as make_plan
from gpumod.drivers.agent import PodAgent
from gpumod.drivers.agent.follow import follow_log
from gpumod.errors import GpumodError, InfeasibleError, Problem, SpecError, StalePlanError
from gpumod.execute import PodExecutor, PodRun, StepOutcome
from gpumod.logconfig import bound_reconcile_id, get_logger
from gpumod.observe import observe_pod
from gpumod.ports import Clock, SystemClock
from gpumod.secrets import load_secret_values
from gpumod.spec import PresetCatalog, SpecSet, load_specs, resolve_service
from gpumod.spec.models import PodSpec, ServiceSpec
from gpumod.wiring import Fleet, PodHandle, unlock_pod

if TYPE_CHECKING:
    import structlog

    from gpumod.saved_plan import SavedPlan  # only `apply FILE` reads saved plans

log = get_logger("gpumod.controller")

MAX_PASSES = 6


class Reporter:
    """What the apply loop tells its caller; the CLI prints, tests collect. Default: nothing."""

    def plan(self, plan: Plan, pass_no: int) -> None: ...

    def step(self, event: str, pod: str, item: Step | StepOutcome) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass
class Snapshot:
    """Specs, desired, observed and the plan of one pass."""

    specs: SpecSet
    pods: list[PodSpec]
    desired: tuple[DesiredPod, ...]
    observed: tuple[ObservedPod, ...]
    plan: Plan

    def desired_pod(self, name: str) -> DesiredPod | None:
        return next((d for d in self.desired if d.name == name), None)

    def observed_pod(self, name: str) -> ObservedPod | None:
        return next((o for o in self.observed if o.name == name), None)


@dataclass
class ApplyResult:
    converged: bool
    passes: int
    runs: list[PodRun] = field(default_factory=list)
    final: Snapshot | None = None
    problems: list[str] = field(default_factory=list)
    down: bool = False  # a `gpumod down` run: the goal was no services at all

    @property
    def exit_code(self) -> int:
        return 0 if self.converged and not self.problems else 1


def select_pods(specs: SpecSet, names: Sequence[str] | None) -> list[PodSpec]:
    if not names:
        return list(specs.pods)
    known = {p.name: p for p in specs.pods}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise GpumodError(
            f"unknown pod(s): {', '.join(unknown)}",
            hint=f"pods in these specs: {', '.join(sorted(known)) or 'none'}",
        )
    return [known[n] for n in names]


async def observe_fleet(fleet: Fleet) -> tuple[ObservedPod, ...]:
    """All pods in parallel; an unreachable pod is reported in its ObservedPod, never raised."""
    handles = list(fleet.handles.values())

    async def one(handle: PodHandle) -> ObservedPod:
        if handle.error:
            return ObservedPod(handle.name, reachable=False, error=handle.error)
        return await observe_pod(handle.agent)

    return tuple(await asyncio.gather(*(one(h) for h in handles)))


def smaller_presets(
    desired: Sequence[DesiredPod], catalog: PresetCatalog
) -> dict[str, tuple[str, int]]:
    """For the planner's alternatives: per service, the known preset of the same role with the
    smallest awake footprint on that pod's GPU, when it is smaller than the service's own."""
    found: dict[str, tuple[str, int]] = {}
    for pod in desired:
        if not pod.gpus:
            continue
        gpu = max(pod.gpus, key=lambda g: (g.total_mb, -g.index))
        for svc in pod.services:
            if not svc.spec.role:
                continue
            best: tuple[int, str] | None = None
            for preset in catalog.by_role(svc.spec.role):
                if preset.name == svc.spec.preset:
                    continue
                try:
                    spec = resolve_service(
                        ServiceSpec(kind="Service", name=svc.name, preset=preset.name),
                        catalog, gpu_name=gpu.name, source=svc.spec.source,
                    )
                    awake = footprint(spec, gpu).awake_mb
                except (GpumodError, ValueError):
                    continue
                if awake < svc.footprint.awake_mb and (best is None or (awake, preset.name) < best):
                    best = (awake, preset.name)
            if best is not None:
                found[svc.name] = (best[1], best[0])
    return found


def plan_with_alternatives(
    desired: Sequence[DesiredPod], observed: Sequence[ObservedPod], catalog: PresetCatalog
) -> Plan:
    """The plan; when something does not fit, planned again with smaller presets to suggest."""
    first = make_plan(desired, observed)
    if first.fits:
        return first
    return make_plan(desired, observed, smaller=smaller_presets(desired, catalog))


def desired_for(
    specs: SpecSet,
    catalog: PresetCatalog,
    pods: Iterable[PodSpec],
    observed: Sequence[ObservedPod],
    *,
    mode_override: dict[str, str] | None = None,
    add: dict[str, Sequence[str]] | None = None,
    services: dict[str, Sequence[str]] | None = None,
    empty: bool = False,
) -> tuple[DesiredPod, ...]:
    by_name = {o.name: o for o in observed}
    names = [p.name for p in pods if by_name.get(p.name) is None or by_name[p.name].reachable or p.gpus]
    gpus = {n: by_name[n].gpus for n in names if n in by_name and by_name[n].gpus}
    desired = build_desired(
        specs, catalog, gpus, pods=names, mode_override=mode_override or {}, add=add or {}, services=services or {}
    )
    if empty:
        desired = tuple(replace(d, services=(), down=True) for d in desired)
    return desired


def plan_observed(
    specs: SpecSet,
    catalog: PresetCatalog,
    pods: list[PodSpec],
    observed: tuple[ObservedPod, ...],
    *,
    empty: bool = False,
    mode_override: dict[str, str] | None = None,
    add: dict[str, Sequence[str]] | None = None,
    services: dict[str, Sequence[str]] | None = None,
) -> Snapshot:
    """Plan what was observed against the specs (or a what-if of them): pure, nothing touched."""
    desired = desired_for(
        specs, catalog, pods, observed, mode_override=mode_override, add=add, services=services, empty=empty
    )
    return Snapshot(specs, pods, desired, observed, plan_with_alternatives(desired, observed, catalog))


async def observe_and_plan(fleet: Fleet, specs: SpecSet, pods: list[PodSpec], *, empty: bool = False) -> Snapshot:
    """Observe the fleet's pods and plan them against the specs: one pass, nothing touched."""
    observed = await observe_fleet(fleet)
    return plan_observed(specs, PresetCatalog.load(), pods, observed, empty=empty)


async def snapshot(spec_dir: str | Path, pod_names: Sequence[str] | None) -> Snapshot:
    """What `plan` and `status` show (no lock: they change nothing)."""
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    async with Fleet(pods) as fleet:
        return await observe_and_plan(fleet, specs, pods)


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

    Raises SpecError / InfeasibleError before touching anything; returns an ApplyResult otherwise.
    With ``empty`` every managed service on the selected pods is stopped (``gpumod down``).
    ``fleet``: a kept fleet (``watch``) whose connections this run reuses; by default the run
    opens its own.
    """
    reporter = reporter or Reporter()
    clock = clock or SystemClock()
    result = ApplyResult(converged=False, passes=0, down=empty)
    failed_once: set[tuple[str, str]] = set()
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    with bound_reconcile_id(new_reconcile_id()):
        async with _locked_run(fleet, pods, spec_dir) as fleet:  # one connection and one lock per pod for the run
            for pass_no in range(1, max_passes + 1):
                result.passes = pass_no
                if pass_no > 1:
                    specs = load_specs(spec_dir)
                done = await _one_pass(
                    fleet, specs, pods, pass_no, result, failed_once,
                    confirm=confirm, reporter=reporter, clock=clock, empty=empty,
                    last=pass_no == max_passes, rlog=log,
                )
                if done:
                    return result
            result.problems.append(f"not converged after {max_passes} passes")
    return result


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
    result: ApplyResult,
    failed_once: set[tuple[str, str]],
    *,
    confirm: Callable[[Plan], bool],
    reporter: Reporter,
    clock: Clock,
    empty: bool,
    last: bool,
    rlog: structlog.typing.FilteringBoundLogger,
) -> bool:
    """One observe → plan → execute pass; True when the apply run is over."""
    fleet.check_locks()
    snap = await observe_and_plan(fleet, specs, pods, empty=empty)
    observed, desired, plan = snap.observed, snap.desired, snap.plan
    result.final = snap
    rlog.info("plan.built", pass_no=pass_no, changes=plan.changes, fits=plan.fits)
    infeasible = [p.infeasible for p in plan.pods if p.infeasible is not None]
    if infeasible:
        if pass_no == 1:
            raise InfeasibleError(infeasible)
        result.problems.append("the desired state stopped fitting during apply; nothing more was done")
        return True
    unreachable = [o for o in observed if not o.reachable]
    starting = [(o.name, s.name) for o in observed for s in o.services if s.status == "starting"]
    deferred = [(p.pod, d) for p in plan.pods for d in p.deferred]
    if plan.changes == 0:
        if starting and not last:
            reporter.note(f"waiting for {', '.join(s for _, s in starting)} to become ready")
            await clock.sleep(1.0)
            return False
        for pod, d in deferred:
            result.problems.append(f"pod {pod}: {d.service} is degraded: {d.reason}")
        for o in unreachable:
            result.problems.append(f"pod {o.name} was not reconciled: {o.error}")
        result.converged = not starting and not deferred and not unreachable
        return True
    secrets = _secrets_for(plan, desired)  # a missing secret fails here, before anything is touched
    reporter.plan(plan, pass_no)
    if pass_no == 1 and not confirm(plan):
        result.problems.append("apply cancelled; nothing was touched")
        return True
    runs = await _execute_plan(fleet, snap, plan, clock, reporter, secrets)
    result.runs.extend(runs)
    for run in runs:
        for outcome in run.failed:
            key = (run.pod, outcome.step.service)
            if key in failed_once and outcome.status == "failed":
                result.problems.append(
                    f"pod {run.pod}: {outcome.step.action} {outcome.step.service} failed again: {outcome.message}"
                )
            failed_once.add(key)
        if run.error:
            result.problems.append(f"pod {run.pod}: {run.error}")
    return any(run.error for run in runs) or bool(result.problems)


async def _execute_plan(
    fleet: Fleet,
    snap: Snapshot,
    plan: Plan,
    clock: Clock,
    reporter: Reporter,
    secrets: dict[str, dict[str, dict[str, str]]],
) -> list[PodRun]:
    """Every pod's steps, pods in parallel."""
    return list(
        await asyncio.gather(
            *(
                _execute_pod(fleet, snap, pod_plan, clock, reporter, secrets.get(pod_plan.pod, {}))
                for pod_plan in plan.pods
                if pod_plan.steps
            )
        )
    )


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
    reporter = reporter or Reporter()
    clock = clock or SystemClock()
    result = ApplyResult(converged=False, passes=1)
    specs = load_specs(saved.spec_dir)
    pods = select_pods(specs, saved.pods)
    with bound_reconcile_id(new_reconcile_id()):
        async with Fleet(pods, lock=True) as fleet:
            fleet.check_locks()
            snap = await observe_and_plan(fleet, specs, pods)
            result.final = snap
            changes = saved.changes_since(pods, snap.desired, snap.observed)
            if changes:
                log.info("saved_plan.stale", changes=changes)
                raise StalePlanError(changes, plan_file=plan_file, spec_dir=saved.spec_dir)
            plan = saved.to_plan()
            log.info("plan.loaded", changes=plan.changes, fingerprint=plan.fingerprint)
            if plan.changes:
                secrets = _secrets_for(plan, snap.desired)
                reporter.plan(plan, 1)
                runs = await _execute_plan(fleet, snap, plan, clock, reporter, secrets)
                result.runs.extend(runs)
                for run in runs:
                    for outcome in run.failed:
                        result.problems.append(
                            f"pod {run.pod}: {outcome.step.action} {outcome.step.service} {outcome.status}"
                            + (f": {outcome.message}" if outcome.message else "")
                        )
                    if run.error:
                        result.problems.append(f"pod {run.pod}: {run.error}")
                result.final = await observe_and_plan(fleet, specs, pods)
            after = result.final.plan
            for pod_plan in after.pods:
                for d in pod_plan.deferred:
                    result.problems.append(f"pod {pod_plan.pod}: {d.service} is degraded: {d.reason}")
            for o in result.final.observed:
                if not o.reachable:
                    result.problems.append(f"pod {o.name} was not reconciled: {o.error}")
            if after.changes and not result.problems:
                result.problems.append(
                    f"{after.changes} change(s) still pending after the saved plan ran; "
                    f"run `gpumod plan {saved.spec_dir}` to see them"
                )
            result.converged = not result.problems
    return result


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
        raise SpecError(problems, hint=hint)
    return found


async def _execute_pod(
    fleet: Fleet,
    snap: Snapshot,
    pod_plan: PodPlan,
    clock: Clock,
    reporter: Reporter,
    secrets: dict[str, dict[str, str]],
) -> PodRun:
    handle = fleet.handles[pod_plan.pod]
    desired = snap.desired_pod(pod_plan.pod)
    assert desired is not None
    observed = snap.observed_pod(pod_plan.pod)
    supervisor, scope = handle.supervisor(dict(observed.init) if observed else {})
    templates = Path(snap.specs.root) / "templates"
    executor = PodExecutor(
        agent=handle.agent,
        ctx=handle.ctx,
        desired=desired,
        clock=clock,
        sim_env=handle.sim,
        vram_release_timeout_s=handle.spec.vram_release_timeout_s,
        report=lambda event, item: reporter.step(event, pod_plan.pod, item),
        secrets=secrets,
        supervisor=supervisor,
        scope=scope,
        unit_env=handle.unit_env,
        template_dir=templates if templates.is_dir() else None,
    )
    return await executor.run(pod_plan)


async def logs(
    spec_dir: str | Path,
    service: str,
    pod_names: Sequence[str] | None,
    lines: int,
    *,
    follow: Callable[[str, str], None] | None = None,
) -> dict[str, str]:
    """The last lines of a service's log on each selected pod that has it (pod -> text): a
    service that runs there, or whose log is still there after it stopped.

    With ``follow``, the last lines and then every new line of each of those logs go to it until
    the caller is cancelled (Ctrl+C); it gets the pod's name ("" when only one pod has the log)
    and the line."""
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    found: dict[str, str] = {}
    async with Fleet(pods) as fleet:
        observed = await observe_fleet(fleet)
        known = specs.service(service) is not None or any(o.service(service) for o in observed)
        if not known:
            raise GpumodError(
                f"no service named {service} in the specs or on the pods",
                hint=f"services: {', '.join(sorted(s.name for s in specs.services)) or 'none'}",
            )
        for obs in observed:
            if not obs.reachable:
                continue
            text = await fleet.handles[obs.name].agent.logs(service, lines)
            if obs.service(service) is not None or text.strip():
                found[obs.name] = text
        if not found:
            unreachable = [f"{o.name} ({o.error})" for o in observed if not o.reachable]
            raise GpumodError(
                f"no pod has a log of service {service} (it has not run on the selected pods)",
                hint="unreachable: " + ", ".join(unreachable) if unreachable else "see `gpumod status`",
            )
        if follow is not None:
            many = len(found) > 1
            await asyncio.gather(
                *(_follow(fleet.handles[name].agent, service, lines, follow, many) for name in found)
            )
    return found


async def _follow(agent: PodAgent, service: str, lines: int, emit: Callable[[str, str], None], named: bool) -> None:
    async for line in follow_log(agent, service, lines):
        emit(agent.pod if named else "", line)


async def unlock(
    spec_dir: str | Path, pod_name: str, *, confirm: Callable[[dict], bool] = lambda owner: True
) -> dict:
    """Break a pod's lock; one held right now is broken only if ``confirm(owner)`` agrees (else
    the answer has ``refused``). See ``gpumod.wiring.unlock_pod``."""
    specs = load_specs(spec_dir)
    (pod,) = select_pods(specs, [pod_name])
    return await unlock_pod(pod, confirm=confirm)


def validate(spec_dir: str | Path) -> SpecSet:
    """Load and check the specs, and resolve every service against the presets."""
    specs = load_specs(spec_dir)
    catalog = PresetCatalog.load()
    pods = [p for p in specs.pods if p.gpus]
    try:
        build_desired(specs, catalog, {}, pods=[p.name for p in pods])
    except SpecError as err:
        raise SpecError(list(err.problems), hint=err.hint) from None
    return specs


__all__ = [
    "ApplyResult",
    "Problem",
    "Reporter",
    "Snapshot",
    "apply",
    "apply_saved",
    "observe_fleet",
    "select_pods",
    "snapshot",
    "validate",
]
