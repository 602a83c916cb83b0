"""How results look to a person (rich tables, ASCII VRAM bars, recaps) and to a script (JSON).

Pure formatting over the typed results of ``gpumod.ops``; no logic decides anything here (the
figures — VRAM budgets, degraded, notes — come computed from the operations layer).
Nothing that comes from a pod or a spec (service output, error messages, names, hosts) is ever
parsed as rich markup: styled lines are built as ``Text`` from plain strings (``styled``).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from gpumod.core.model import GpuBudget, Plan
from gpumod.core.render import render_plan
from gpumod.errors import GpumodError, InfeasibleError, SpecError
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:  # events and results of verbs `plan` does not load (benchmarks/plan_startup.py)
    from gpumod.ops.apply import ApplyResult
    from gpumod.ops.events import Event, Progress, RunFailed
    from gpumod.ops.simulate import SimulationResult
    from gpumod.ops.status import StatusResult

BAR_WIDTH = 40


def styled(*parts: str | tuple[str, str]) -> Text:
    """One line from plain strings and ``(text, style)`` pairs; no part is read as markup."""
    return Text.assemble(*parts)


def error_lines(message: str, hint: str = "") -> list[Text]:
    """A known error as the CLI shows it: a red ``error:`` line, then its hint (dim)."""
    lines = [styled(("error:", "red"), " ", message)]
    if hint:
        lines.append(Text(f"hint: {hint}", style="dim"))
    return lines


def print_plan(console: Console, plan: Plan) -> None:
    for line in render_plan(plan):
        console.print(line, markup=False)


class ConsoleReporter:
    """The CLI's ``Reporter``: prints each plan, one line per finished step, notes, and (with
    ``recap``, as ``watch`` wants) each run's recap or why it failed. ``quiet``: prints nothing."""

    def __init__(self, console: Console, *, quiet: bool = False, recap: bool = False, json_events: Any = None) -> None:
        self.console = console
        self.quiet = quiet
        self.recap = recap
        self.json_events = json_events  # a text stream: Progress events as JSON lines (``-o json``)
        self._bars: dict[tuple[str, str], Any] = {}  # (pod, service) -> (rich Progress, task) of a download
        self._last_line: dict[tuple[str, str], float] = {}

    def event(self, e: Event) -> None:
        from gpumod.ops.events import Note, PlanBuilt, Progress, RunFailed, RunFinished, StepFinished

        if isinstance(e, Progress):
            self._progress(e)
            return
        if isinstance(e, StepFinished) and (e.pod, e.outcome.step.service) in self._bars:
            bar, _ = self._bars.pop((e.pod, e.outcome.step.service))
            bar.stop()
        if self.quiet:
            return
        if isinstance(e, PlanBuilt):
            if e.pass_no > 1:
                self.console.print(Text(f"pass {e.pass_no}: the pods still differ from the specs", style="dim"))
            print_plan(self.console, e.plan)
        elif isinstance(e, StepFinished):
            o, s = e.outcome, e.outcome.step
            mark = {"ok": ("ok", "green"), "failed": ("FAILED", "red"), "skipped": ("skipped", "yellow")}[o.status]
            msg = f" — {o.message}" if o.message else ""
            what = f"{s.action} {s.service}" if s.action not in ("setup", "download") else (
                s.detail if s.action == "setup" else f"download {s.detail}")
            self.console.print(
                styled(f"  {e.pod}: {s.symbol} {what} … ", mark, f" ({o.seconds:.1f}s){msg}"),
                highlight=False,
            )
        elif isinstance(e, Note):
            self.console.print(Text(e.text, style="dim" if e.detail else ""))
        elif isinstance(e, RunFinished) and self.recap:
            for text in render_recap(e.result):
                self.console.print(Text(text))
        elif isinstance(e, RunFailed) and self.recap:
            for line in failed_run_lines(e):
                self.console.print(line)


    def _progress(self, e: Progress) -> None:
        """A download's bar (bytes, rate, ETA) on a terminal; a line every few seconds otherwise."""
        if self.json_events is not None:
            self.json_events.write(json.dumps(e.to_json()) + "\n")
            self.json_events.flush()
        if self.quiet:
            return
        key = (e.pod, e.step.service)
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn, DownloadColumn, Progress as Bar, TextColumn, TimeRemainingColumn, TransferSpeedColumn,
            )

            if key not in self._bars:
                bar = Bar(TextColumn("  {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                          TimeRemainingColumn(), console=self.console, transient=False)
                bar.start()
                self._bars[key] = (bar, bar.add_task(Text(f"{e.pod}: ↓ {e.step.detail}").plain, total=e.total))
            bar, task = self._bars[key]
            bar.update(task, completed=e.done, total=e.total)
            return
        now = time.monotonic()
        if e.kind == "progress" and now - self._last_line.get(key, 0.0) < 2.0:
            return
        from gpumod.drivers.provision.disk import human_bytes  # its package loads pydantic: not on `plan`'s path
        self._last_line[key] = now
        pct = 100 * e.done / e.total if e.total else 100.0
        eta = f", ETA {e.eta_s:.0f}s" if e.eta_s is not None and e.kind == "progress" else ""
        rate = f", {human_bytes(e.rate)}/s" if e.rate else ""
        self.console.print(Text(
            f"  {e.pod}: ↓ {e.step.detail} {human_bytes(e.done)} / {human_bytes(e.total)} ({pct:.0f}%){rate}{eta}",
            style="dim"), highlight=False)


def failed_run_lines(e: RunFailed) -> list[Text]:
    """Why a pass of ``watch`` did nothing, and that watching goes on."""
    err = e.error
    if isinstance(err, SpecError):
        return [*(Text(str(p)) for p in err.problems),
                Text("specs invalid; nothing touched. Waiting for the next change.", style="red")]
    if isinstance(err, InfeasibleError):
        return [*(Text(i.describe()) for i in err.infeasible),
                Text("does not fit; nothing touched. Waiting for the next change.", style="red")]
    if isinstance(err, GpumodError):
        return error_lines(err.message, err.hint)
    return [Text(e.traceback), Text("this is a bug in gpumod (please report it); watching goes on", style="red")]


def render_recap(result: ApplyResult) -> list[str]:
    lines: list[str] = []
    totals: dict[str, dict[str, int]] = {}
    for run in result.runs:
        counts = totals.setdefault(run.pod, {"ok": 0, "failed": 0, "skipped": 0})
        for outcome in run.outcomes:
            counts[outcome.status] += 1
    if totals:
        lines.append("Recap:")
        for pod, c in sorted(totals.items()):
            lines.append(f"  {pod}: ok={c['ok']} failed={c['failed']} skipped={c['skipped']}")
    for problem in result.problems:
        lines.append(f"problem: {problem}")
    if result.converged and not result.problems:
        pods = ", ".join(p.pod for p in result.final.plan.pods) if result.final else ""
        if result.down:
            lines.append(f"Stopped every managed service on {pods}." if pods else "Nothing to stop.")
        else:
            verb = "matches" if "," not in pods else "match"
            lines.append(f"Converged: {pods} {verb} the specs." if pods else "Converged.")
    elif not result.problems:
        lines.append("Not converged.")
    return lines


# -- status ----------------------------------------------------------------------------------


def status_table(result: StatusResult, *, visual: bool = False) -> list[Any]:
    from rich.table import Table  # only `status` draws tables

    from gpumod.ops.status import since_text

    now = result.now
    out: list[Any] = []
    for pod in result.pods:
        table = Table(title=Text(f"pod {pod.pod} · mode {pod.mode} · {pod.host}"), title_justify="left")
        with_notes = any(r.note for r in pod.services)
        for col in ("service", "state", "target", "GPU", "VRAM used/budget", "port", "since") + (
            ("note",) if with_notes else ()
        ):
            table.add_column(col)
        for r in pod.services:
            cells = [
                r.service,
                r.state_label,
                r.target,
                ",".join(map(str, r.gpus)) or "-",
                r.vram_text,
                str(r.port or "-"),
                since_text(r.since, now),
                *((r.note,) if with_notes else ()),
            ]
            texts = [Text(c) for c in cells]
            texts[1].stylize(r.state_style)
            table.add_row(*texts)
        out.append(table)
        for r in pod.services:
            if r.degraded and (r.last_error or r.last_log_line):
                out.append(Text(f"  {r.service}: last failed start: {r.last_error or '?'}", style="red"))
                if r.last_log_line:
                    out.append(Text(f"    its last log line: {r.last_log_line}"))
        parts: list[str | tuple[str, str]] = []
        if not pod.reachable and result.snapshot.observed_pod(pod.pod) is not None:
            parts.append((f"  unreachable: {pod.why_unreachable}", "red"))
        if not pod.fits:
            why = f"  mode {pod.mode} does not fit the GPUs; nothing is planned (`gpumod plan` shows why)"
            parts.append((why, "red"))
        if pod.changes_pending:
            parts.append((f"  {pod.changes_pending} change(s) pending", "yellow"))
        if parts:
            out.append(styled(*parts))
        observed = result.snapshot.observed_pod(pod.pod)
        if visual and observed and observed.gpus:
            for g in observed.gpus:
                out.append(Text(f"GPU {g.index} {g.name}  {bar(g.used_mb, g.total_mb)}"))
    return out


# -- simulate --------------------------------------------------------------------------------


def bar(used: int, total: int, width: int = BAR_WIDTH) -> str:
    frac = 0.0 if total <= 0 else used / total
    filled = min(width, int(round(frac * width)))
    over = "!" if used > total else ""
    return f"[{'█' * filled}{'░' * (width - filled)}]{over} {used / 1024:.1f}/{total / 1024:.1f} GiB ({frac:.0%})"


def _what(mode: str | None, services: tuple[str, ...] | None, add: tuple[str, ...], deps: tuple[str, ...]) -> str:
    what = f"services {', '.join(services)}" if services is not None else f"mode {mode}"
    if add:
        what += f" + {', '.join(add)}"
    if deps:
        what += f" (+ {', '.join(deps)}, needed by {'them' if len(deps) > 1 else 'it'})"
    return what


def render_simulation(sim: SimulationResult) -> list[str]:
    """Current (the pod's mode, as planned now) and proposed (the what-if) side by side, per GPU:
    who uses what, both bars, fits or by how much not; then the alternatives."""
    current_mode = sim.current_mode
    proposed_plan = sim.proposed.plan.pod(sim.pod)
    lines = [
        f"pod {sim.pod}",
        f"  current:  mode {current_mode}",
        f"  proposed: {_what(sim.mode or current_mode, sim.services, sim.add, sim.dependencies)}",
    ]
    if sim.unobserved:
        lines.append(f"  (not observed: {sim.unobserved}; priced on the declared GPUs with nothing running)")
    now, then = sim.budgets(sim.current), sim.budgets(sim.proposed)
    if proposed_plan is None or not then:
        return lines + ["not planned: the pod's GPUs are not known"]
    for index in sorted(set(now) | set(then)):
        cur, new = now.get(index), then.get(index)
        gpu = new or cur
        assert gpu is not None
        used_now, used_then = dict(cur.users) if cur else {}, dict(new.users) if new else {}
        names = list(dict.fromkeys([*used_now, *used_then]))
        width = max([24, *(len(n) for n in names)])
        lines.append(f"GPU {gpu.index} {gpu.name} ({gpu.capacity_mb} MiB)")
        lines.append(f"  {'':<{width}} {'current':>12} {'proposed':>12}")
        for name in names:
            lines.append(f"  {name:<{width}} {_mib(used_now.get(name)):>12} {_mib(used_then.get(name)):>12}")
        lines.append(
            f"  {'total':<{width}} {_mib(cur.need_mb if cur else None):>12} {_mib(new.need_mb if new else None):>12}"
        )
        for label, b in (("current ", cur), ("proposed", new)):
            if b is not None:
                lines.append(f"  {label} {bar(b.need_mb, b.capacity_mb)}  {_verdict(b)}")
    inf = proposed_plan.infeasible
    if inf is not None and inf.alternatives:
        lines.append("Alternatives:")
        lines += [f"  - {a.text}" for a in inf.alternatives]
    if proposed_plan.fits:
        lines.append(f"✓ fits ({len(proposed_plan.steps)} step(s) to get there from what runs now)")
    else:
        lines.append("✗ does not fit")
    return lines


def _mib(mb: int | None) -> str:
    return "-" if mb is None else f"{mb} MiB"


def _verdict(b: GpuBudget) -> str:
    over = b.need_mb - b.capacity_mb
    return "fits" if over <= 0 else f"✗ exceeds by {over} MiB ({over / 1024:.1f} GiB)"
