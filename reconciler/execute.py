"""Runs a pod's plan: phase free (stops, sleeps), then phase fill, each fill wave after the GPUs
show the free VRAM the plan says it needs (the executor never prices VRAM itself).

Waves run in parallel; each start is gated on its health check within its startup timeout. A
failed step fails the steps that depend on it (skipped, reported), never independent ones. All
waiting goes through the injected ``Clock`` so tests run it in zero seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Any, Callable

from gpumod.core.model import DesiredPod, PodPlan, Step
from gpumod.drivers.agent import PodAgent
from gpumod.drivers.base import HttpAnswer, HttpCall, Launch, PodContext
from gpumod.drivers.probes.nvidia_smi import parse_gpus
from gpumod.drivers.registry import driver_for
from gpumod.drivers.supervisors import Supervisor, make_supervisor
from gpumod.errors import GpumodError, HealthTimeoutError, PodError, StepError, VramReleaseTimeoutError
from gpumod.logconfig import get_logger
from gpumod.observe import service_status
from gpumod.ports import Clock
from gpumod.spec.resolved import ResolvedService

log = get_logger("gpumod.execute")

POLL_S = 0.2  # between two VRAM polls (and two health polls of an agent that cannot wait)
HEALTH_WAIT_S = 1.0  # the longest one health poll waits on the pod for the service to read differently
CHANGED_PAUSE_S = (0.02, 0.2)  # before the next health poll after a changed reading: first, at most
_FAILURE_FIELDS = ("failures", "last_failure_at", "last_error", "last_log_line")  # reset by a healthy start


@dataclass
class StepOutcome:
    step: Step
    status: str  # ok | failed | skipped
    message: str = ""
    seconds: float = 0.0


@dataclass
class PodRun:
    pod: str
    outcomes: list[StepOutcome] = field(default_factory=list)
    error: str = ""

    @property
    def failed(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.error and not self.failed


Reporter = Callable[[str, StepOutcome | Step], None]


@dataclass
class PodExecutor:
    """Executes one pod's plan through its agent."""

    agent: PodAgent
    ctx: PodContext
    desired: DesiredPod
    clock: Clock
    sim_env: bool = False
    vram_release_timeout_s: float = 60.0
    report: Reporter | None = None
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> secret env values
    supervisor: Supervisor | None = None  # the pod's (``PodHandle.supervisor_for``); default: processes
    unit_env: dict[str, str] = field(default_factory=dict)  # what every service gets too (a sim pod's PATH...)

    def __post_init__(self) -> None:
        self._supervisor: Supervisor = self.supervisor or make_supervisor(self.agent, "process", "system")
        # the GPUs as read by the last health poll that said ready, when nothing that changes
        # VRAM ran since (``_launch`` and ``_http`` clear it): the first VRAM reading of the next
        # fill wave after a wave of one step
        self._gpus_after: dict[str, Any] | None = None

    async def run(self, plan: PodPlan) -> PodRun:
        run = PodRun(plan.pod)
        failed: set[str] = set()
        free = [s for s in plan.steps if s.phase == "free"]
        fill = [s for s in plan.steps if s.phase == "fill"]
        carried = await self._phase(free, run, failed)
        await self._phase(fill, run, failed, plan, carried)
        return run

    # -- phases ------------------------------------------------------------------------------

    async def _phase(
        self,
        steps: list[Step],
        run: PodRun,
        failed: set[str],
        plan: PodPlan | None = None,
        carried: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Run ``steps`` wave by wave; in phase fill (``plan`` given) each wave first waits until
        every GPU shows the free MiB the plan says the wave needs (its first reading: the one the
        previous wave's only step ended with, if it did; ``carried`` for the first wave). Returns
        the reading the last wave's only step ended with, if any."""
        waves = [list(wave) for _, wave in groupby(steps, key=lambda s: s.wave)]
        for n, wave in enumerate(waves):
            todo: list[Step] = []
            for step in wave:
                blocker = self._blocked_by(step, failed)
                if blocker:
                    failed.add(step.service)
                    self._record(run, StepOutcome(step, "skipped", f"depends on {blocker}, which failed"))
                else:
                    todo.append(step)
            if todo and plan is not None:
                try:
                    await self._wait_vram(
                        plan.need_before(wave[0].wave), todo, releasing=_releasing(run), first=carried
                    )
                except GpumodError as err:
                    run.error = err.detail if isinstance(err, PodError) else str(err)
                    for step in todo + [s for later in waves[n + 1 :] for s in later]:
                        self._record(run, StepOutcome(step, "skipped", "VRAM was not released"))
                    return None
            self._gpus_after = None
            outcomes = await asyncio.gather(*(self._run_step(s) for s in todo))
            ok = len(outcomes) == 1 and outcomes[0].status == "ok"
            carried = self._gpus_after if ok else None  # several steps: each one's reading misses the others
            for outcome in outcomes:
                if outcome.status != "ok":
                    failed.add(outcome.step.service)
                self._record(run, outcome)
        return carried

    def _blocked_by(self, step: Step, failed: set[str]) -> str | None:
        """A start/wake waits on its dependencies; a stop/sleep on its dependents."""
        if step.phase == "fill":
            svc = self.desired.service(step.service)
            deps = svc.spec.depends_on if svc else ()
            return next((d for d in deps if d in failed), None)
        dependents = [
            s.name for s in self.desired.services if step.service in s.spec.depends_on and s.name in failed
        ]
        return dependents[0] if dependents else None

    def _record(self, run: PodRun, outcome: StepOutcome) -> None:
        run.outcomes.append(outcome)
        if outcome.status == "skipped":
            s = outcome.step
            log.warning(
                "step.skipped", pod=s.pod, service=s.service, step=s.action, outcome="skipped",
                duration_s=0.0, reason=outcome.message,
            )
        if self.report:
            self.report("done", outcome)

    async def _run_step(self, step: Step) -> StepOutcome:
        started = time.monotonic()
        if self.report:
            self.report("start", step)
        slog = log.bind(pod=step.pod, service=step.service, step=step.action)
        slog.info("step.started", wave=step.wave, phase=step.phase)
        try:
            if step.action == "stop":
                await self._stop(step)
            elif step.action == "sleep":
                await self._sleep(step.service, step.level or "l1")
            elif step.action == "wake":
                await self._wake(step)
            else:  # start, restart
                await self._start(step)
        except GpumodError as err:
            seconds = time.monotonic() - started
            slog.warning("step.failed", outcome="failed", duration_s=round(seconds, 3), error=str(err))
            return StepOutcome(step, "failed", _cause(err, step), seconds)
        seconds = time.monotonic() - started
        slog.info("step.done", outcome="ok", duration_s=round(seconds, 3))
        return StepOutcome(step, "ok", "", seconds)

    # -- actions -----------------------------------------------------------------------------

    def _spec(self, name: str) -> ResolvedService:
        svc = self.desired.service(name)
        if svc is None:
            raise StepError(self.desired.name, name, "not in the desired state")
        return svc.spec

    async def _stop(self, step: Step) -> None:
        # the pod's record holds the stop_timeout_s the process was started with (also for a
        # service no longer desired, which has no spec here): the agent uses it
        await self._supervisor.stop(step.service)

    async def _start(self, step: Step) -> None:
        desired = self.desired.service(step.service)
        if desired is None:
            raise StepError(self.desired.name, step.service, "not in the desired state")
        driver = driver_for(desired.spec.driver)
        totals = [g.total_mb for g in self.desired.gpus if g.index in step.gpus]
        spec = driver.within_budget(desired.spec, desired.footprint.awake_mb, totals)
        # the record keeps the hash of the spec as written, whatever the launch derived from it,
        # a digest per field (so that a later change can be named by its fields), and what the
        # service waits for: phase free stops dependents first, even once the service has left
        # the mode or the specs (or on `down`)
        launch = driver.launch(spec, step.gpus, self.ctx)
        launch = replace(
            launch,
            spec_hash=desired.spec_hash,
            meta=(
                *launch.meta,
                ("spec_fields", desired.spec.field_digests()),
                ("depends_on", list(spec.depends_on)),
            ),
        )
        if self.sim_env:
            sim = (
                ("GPUMOD_SIM_VRAM_MB", str(desired.footprint.awake_mb)),
                ("GPUMOD_SIM_SLEEP_MB", str(desired.footprint.asleep_mb)),
            )
            launch = _with_env(launch, sim)
        await self._launch(launch)
        try:
            # a llama.cpp router is healthy (and "asleep") before its model is loaded; the plan
            # says when to leave it so (start_asleep)
            calls = [] if step.start_asleep else driver.after_start(spec)
            ready = await self._await_ready(
                spec, awake=not calls and not step.start_asleep, timeout=spec.startup_timeout_s
            )
            if calls:
                await self._http(spec, calls)
                ready = await self._await_ready(spec, awake=True, timeout=spec.startup_timeout_s)
        except GpumodError as err:
            await self._record_failure(spec, err)
            raise
        if any((ready.get("meta") or {}).get(k) for k in _FAILURE_FIELDS):  # a clean record needs no reset
            await self.agent.update_meta(
                spec.name, failures=0, last_failure_at=None, last_error=None, last_log_line=None
            )
        if step.sleep_after:
            await self._sleep(spec.name, step.level or spec.sleep)
        elif step.start_asleep:
            await self.agent.update_meta(spec.name, sleep_level=step.level or spec.sleep)

    async def _launch(self, launch: Launch) -> None:
        self._gpus_after = None
        if self.unit_env:  # whatever the supervisor: a service inherits almost nothing
            launch = _with_env(launch, tuple(sorted(self.unit_env.items())))
        answer = await self._supervisor.start(launch, self.secrets.get(launch.name, {}))
        for warning in answer.get("warnings") or ():
            log.warning(
                f"{self._supervisor.kind}.warning", pod=self.ctx.pod, service=launch.name, warning=str(warning)
            )

    async def _record_failure(self, spec: ResolvedService, err: GpumodError) -> None:
        """Kill what is left of a failed start and record on the pod the failure (count and time,
        for backoff) and its cause (for `gpumod status`): the error and the last line it logged."""
        lines: list[str] = []
        try:
            lines = _this_start(await self.agent.logs(spec.name, 15))
        except GpumodError:
            pass
        cause = err.detail if isinstance(err, StepError) else err.message
        last_line = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
        try:
            await self._supervisor.stop(spec.name, spec.stop_timeout_s, forget=False)
            record = await self.agent.update_meta(
                spec.name,
                bump_failures=True,
                last_failure_at=self.clock.now(),
                last_error=cause.splitlines()[0][:300] if cause else "",
                last_log_line=last_line[:300],
            )
            log.warning("service.failed_start", service=spec.name, failures=record.get("failures"))
        except GpumodError:
            pass
        if lines and isinstance(err, StepError):
            tail = "\n    last log lines:\n" + "\n".join("      " + ln for ln in lines)
            err.message += tail
            err.detail += tail  # the cause alone, as a step's line shows it
            err.args = (err.message,)

    async def _sleep(self, name: str, level: str) -> None:
        spec = self._spec(name)
        driver = driver_for(spec.driver)
        await self._http(spec, driver.sleep_calls(spec, level), then_record={"sleep_level": level}, gpus_after=True)

    async def _wake(self, step: Step) -> None:
        spec = self._spec(step.service)
        driver = driver_for(spec.driver)
        await self._http(spec, driver.wake_calls(spec, level=step.level))
        await self._await_ready(spec, awake=True, timeout=spec.startup_timeout_s)
        await self.agent.update_meta(spec.name, sleep_level=None)

    async def _http(
        self,
        spec: ResolvedService,
        calls: list[HttpCall],
        *,
        then_record: dict[str, Any] | None = None,
        gpus_after: bool = False,
    ) -> list[HttpAnswer]:
        """The calls, in order; StepError on the first answer that is not ok. ``then_record``:
        fields the pod writes in the service's record once every call answered ok; ``gpus_after``:
        keep the GPUs as the calls leave them (``_gpus_after``)."""
        self._gpus_after = None  # the calls may change what the GPUs hold (sleep, wake, load)
        answers = await self.agent.http(
            spec.port,
            calls,
            then_record=(spec.name, then_record) if then_record else None,
            gpus_after=self._keep_gpus_after if gpus_after else None,
        )
        for call, answer in zip(calls, answers):
            if answer.status not in call.ok_status:
                body = answer.body.strip().splitlines()[-1:] if answer.body else []
                detail = f": {body[0][:300]}" if body else ""
                raise StepError(
                    self.desired.name,
                    spec.name,
                    f"{call.method} {call.path} answered {answer.status or 'nothing'}{detail}",
                )
        if len(answers) < len(calls):
            raise StepError(self.desired.name, spec.name, f"{calls[len(answers)].path} was not sent")
        return answers

    def _keep_gpus_after(self, raw: dict[str, Any]) -> None:
        self._gpus_after = raw

    async def _await_ready(self, spec: ResolvedService, *, awake: bool, timeout: float) -> dict[str, Any]:
        """Poll the service on the pod until it is ready (and awake), its process died, or timeout;
        returns the agent's entry that said ready (``meta``: its record on the pod). The answers
        are read as ``gpumod status`` reads them (``observe.service_status``).

        Each poll after the first waits on the pod (up to ``HEALTH_WAIT_S``) until the service
        reads differently from the last poll, so a change is seen within the agent's own poll
        interval, not one agent process per poll; a reading that changed but is not ready yet is
        followed by a short pause that doubles up to ``POLL_S`` (a service whose answers change
        all the time is never polled faster than that)."""
        deadline = self.clock.now() + timeout
        seen, pause = "", CHANGED_PAUSE_S[0]
        while True:
            wait = min(HEALTH_WAIT_S, max(0.0, deadline - self.clock.now())) if seen else 0.0
            raw = await self.agent.observe(
                names=[spec.name], gpus=False, init=False, unchanged={spec.name: seen}, wait_s=wait,
                gpus_after=bool(seen),  # a poll that waited is the one likely to say ready
            )
            entry = raw.get("services", {}).get(spec.name) or {}
            status, sleep_level, detail = service_status(entry)
            if status == "failed":
                raise StepError(self.desired.name, spec.name, "the process exited while starting")
            if status == "unhealthy":
                raise StepError(self.desired.name, spec.name, f"unhealthy: {detail or 'error'}")
            if status in ("running", "sleeping") and (not awake or sleep_level is None):
                self._gpus_after = raw.get("gpus_after")
                return entry
            if self.clock.now() >= deadline:
                raise HealthTimeoutError(
                    self.desired.name,
                    spec.name,
                    f"not healthy after {timeout:g} s ({detail or status})",
                    hint="raise health.startup_timeout_s, or read `gpumod logs`",
                )
            now_seen = str(entry.get("seen") or "")
            if not now_seen:  # an agent that gives no digest: a plain poll
                await self.clock.sleep(POLL_S)
            elif now_seen != seen:
                await self.clock.sleep(pause)
                pause = min(pause * 2, CHANGED_PAUSE_S[1])
            seen = now_seen

    async def _wait_vram(
        self, need: dict[int, int], wave: list[Step], *, releasing: bool, first: dict[str, Any] | None = None
    ) -> None:
        """Poll nvidia-smi until every GPU shows the free MiB ``need`` (the plan's, for this fill
        wave); VramReleaseTimeoutError after ``vram_release_timeout_s``. ``releasing``: something
        this run stopped or put to sleep may still be giving VRAM back. ``first``: a reading taken
        since the last step that changed VRAM, used as the first poll."""
        if not need:
            return
        deadline = self.clock.now() + self.vram_release_timeout_s
        while True:
            raw = first if first is not None else await self.agent.gpus()
            first = None
            gpus = {g.index: g for g in parse_gpus(raw.get("stdout", ""))} if raw.get("ok") else {}
            free = {idx: gpus[idx].total_mb - gpus[idx].used_mb for idx in need if idx in gpus}
            short = sorted(idx for idx, mb in need.items() if idx in free and free[idx] < mb)
            if not short:
                return
            if self.clock.now() >= deadline:
                gpu = short[0]
                names = ", ".join(s.service for s in wave if gpu in s.gpus)
                waited = f"{self.vram_release_timeout_s:g} s"
                if releasing:
                    why = f"waited {waited} for stopped/sleeping services to release VRAM"
                    hint = "check `nvidia-smi` on the pod for processes that did not exit"
                else:
                    why = f"nothing was stopped or put to sleep to make room (waited {waited})"
                    hint = "check `nvidia-smi` on the pod for processes gpumod does not manage"
                raise VramReleaseTimeoutError(
                    self.desired.name,
                    f"GPU {gpu} has {free[gpu]} MiB free but needs {need[gpu]} MiB for {names}; {why}: {hint}",
                )
            await self.clock.sleep(POLL_S)


def _releasing(run: PodRun) -> bool:
    """Whether an earlier step of this run gives VRAM back: a stop, a sleep, a start that went
    to sleep after its health check, or a failed start (its process is killed)."""
    return any(
        o.step.action in ("stop", "sleep") or o.step.sleep_after or o.status == "failed" for o in run.outcomes
    )


def _this_start(tail: str) -> list[str]:
    """The lines of a service log tail written since its last start (after the agent's
    ``=== gpumod …: starting`` header): what this start printed, not the previous one."""
    lines = tail.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("=== gpumod ") and ": starting " in ln]
    return lines[starts[-1] + 1 :] if starts else lines


def _with_env(launch: Launch, extra: tuple[tuple[str, str], ...]) -> Launch:
    keys = {k for k, _ in extra}
    return replace(launch, env=tuple((k, v) for k, v in launch.env if k not in keys) + extra)


def _cause(err: GpumodError, step: Step) -> str:
    """What went wrong (with any log lines added to it), without the pod (and service) the
    step's line already names: the error's ``detail`` when it is about this pod (and service)."""
    if isinstance(err, StepError) and (err.pod, err.service) == (step.pod, step.service):
        return err.detail
    if isinstance(err, PodError) and err.pod == step.pod:
        return err.detail
    return str(err)
