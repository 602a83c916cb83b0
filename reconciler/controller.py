"""The operations layer: one reconcile pass and the apply loop, as typed results.

Every interface (CLI today; MCP and TUI later) calls these functions. Each pass re-reads the
specs and re-observes every selected pod — nothing is remembered between passes that the pods
cannot tell (level-triggered, like a Kubernetes controller).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from gpumod.core.desired import build_desired
from gpumod.core.footprint import footprint
from gpumod.core.model import DesiredPod, ObservedPod, Plan, PodPlan, Step
from gpumod.core.plan import plan as make_plan
from gpumod.errors import GpumodError, InfeasibleError, Problem, SpecError
from gpumod.execute import PodExecutor, PodRun, StepOutcome
from gpumod.logconfig import get_logger
from gpumod.observe import observe_pod
from gpumod.ports import Clock, SystemClock
from gpumod.secrets import load_secret_values
from gpumod.spec import PresetCatalog, SpecSet, load_specs, resolve_service
from gpumod.spec.models import PodSpec, ServiceSpec
from gpumod.wiring import Fleet, PodHandle, unlock_pod

if TYPE_CHECKING:
    import structlog

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
    empty: bool = False,
) -> tuple[DesiredPod, ...]:
    by_name = {o.name: o for o in observed}
    names = [p.name for p in pods if by_name.get(p.name) is None or by_name[p.name].reachable or p.gpus]
    gpus = {n: by_name[n].gpus for n in names if n in by_name and by_name[n].gpus}
    desired = build_desired(
        specs, catalog, gpus, pods=names, mode_override=mode_override or {}, add=add or {}
    )
    if empty:
        desired = tuple(
            DesiredPod(d.name, d.mode, d.gpus, d.reserve_mb, d.max_awake, services=()) for d in desired
        )
    return desired


async def observe_and_plan(
    fleet: Fleet,
    specs: SpecSet,
    pods: list[PodSpec],
    *,
    empty: bool = False,
    mode_override: dict[str, str] | None = None,
    add: dict[str, Sequence[str]] | None = None,
) -> Snapshot:
    """Observe the fleet's pods and plan them against the specs: one pass, nothing touched."""
    catalog = PresetCatalog.load()
    observed = await observe_fleet(fleet)
    desired = desired_for(specs, catalog, pods, observed, mode_override=mode_override, add=add, empty=empty)
    return Snapshot(specs, pods, desired, observed, plan_with_alternatives(desired, observed, catalog))


async def snapshot(
    spec_dir: str | Path,
    pod_names: Sequence[str] | None,
    *,
    mode_override: dict[str, str] | None = None,
    add: dict[str, Sequence[str]] | None = None,
) -> Snapshot:
    """What `plan`, `status` and `simulate` show (no lock: they change nothing)."""
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    async with Fleet(pods) as fleet:
        return await observe_and_plan(fleet, specs, pods, mode_override=mode_override, add=add)


async def apply(
    spec_dir: str | Path,
    pod_names: Sequence[str] | None = None,
    *,
    confirm: Callable[[Plan], bool] = lambda plan: True,
    reporter: Reporter | None = None,
    clock: Clock | None = None,
    empty: bool = False,
    max_passes: int = MAX_PASSES,
) -> ApplyResult:
    """Observe → plan → execute until the plan is empty (converged) or a permanent failure.

    Raises SpecError / InfeasibleError before touching anything; returns an ApplyResult otherwise.
    With ``empty`` every managed service on the selected pods is stopped (``gpumod down``).
    """
    reporter = reporter or Reporter()
    clock = clock or SystemClock()
    reconcile_id = uuid.uuid4().hex[:8]
    rlog = log.bind(reconcile_id=reconcile_id)
    result = ApplyResult(converged=False, passes=0, down=empty)
    failed_once: set[tuple[str, str]] = set()
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    async with Fleet(pods, lock=True) as fleet:  # one connection and one lock per pod for the run
        for pass_no in range(1, max_passes + 1):
            result.passes = pass_no
            if pass_no > 1:
                specs = load_specs(spec_dir)
            done = await _one_pass(
                fleet, specs, pods, pass_no, result, failed_once,
                confirm=confirm, reporter=reporter, clock=clock, empty=empty,
                last=pass_no == max_passes, rlog=rlog,
            )
            if done:
                return result
    result.problems.append(f"not converged after {max_passes} passes")
    return result


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
    runs = await asyncio.gather(
        *(
            _execute_pod(fleet, snap, pod_plan, clock, reporter, secrets.get(pod_plan.pod, {}))
            for pod_plan in plan.pods
            if pod_plan.steps
        )
    )
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


def _secrets_for(plan: Plan, desired: Sequence[DesiredPod]) -> dict[str, dict[str, dict[str, str]]]:
    """Secret values of every service the plan starts, per pod; problems of all of them at once."""
    by_pod = {d.name: d for d in desired}
    found: dict[str, dict[str, dict[str, str]]] = {}
    problems: list[Problem] = []
    for pod_plan in plan.pods:
        for step in pod_plan.steps:
            svc = by_pod[pod_plan.pod].service(step.service) if pod_plan.pod in by_pod else None
            if step.action not in ("start", "restart") or svc is None or not svc.spec.secrets:
                continue
            try:
                values = load_secret_values(svc.spec)
            except SpecError as err:
                problems.extend(err.problems)
                continue
            found.setdefault(pod_plan.pod, {})[svc.name] = values
    if problems:
        raise SpecError(problems)
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


async def logs(spec_dir: str | Path, service: str, pod_names: Sequence[str] | None, lines: int) -> dict[str, str]:
    """The last lines of a service's log on each selected pod that has it (pod -> text)."""
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    found: dict[str, str] = {}
    async with Fleet(pods) as fleet:
        observed = await observe_fleet(fleet)
        for obs in observed:
            if obs.service(service) is not None:
                found[obs.name] = await fleet.handles[obs.name].agent.logs(service, lines)
        if not found:
            unreachable = [f"{o.name} ({o.error})" for o in observed if not o.reachable]
            raise GpumodError(
                f"no pod runs a service named {service}",
                hint="unreachable: " + ", ".join(unreachable) if unreachable else "see `gpumod status`",
            )
    return found


async def unlock(spec_dir: str | Path, pod_name: str) -> dict:
    specs = load_specs(spec_dir)
    (pod,) = select_pods(specs, [pod_name])
    return await unlock_pod(pod)


def validate(spec_dir: str | Path) -> SpecSet:
    """Load and check the specs, and resolve every service against the presets."""
    specs = load_specs(spec_dir)
    catalog = PresetCatalog.load()
    pods = [p for p in specs.pods if p.gpus]
    try:
        build_desired(specs, catalog, {}, pods=[p.name for p in pods])
    except SpecError as err:
        raise SpecError(list(err.problems)) from None
    return specs


__all__ = [
    "ApplyResult",
    "Problem",
    "Reporter",
    "Snapshot",
    "apply",
    "observe_fleet",
    "select_pods",
    "snapshot",
    "validate",
]
