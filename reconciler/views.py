"""How results look to a person (rich tables, ASCII VRAM bars, recaps) and to a script (JSON).

Pure formatting over the typed results of ``gpumod.controller``; no logic decides anything here.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.text import Text

from gpumod.controller import ApplyResult, Reporter, Snapshot
from gpumod.core.model import GpuBudget, Plan, Step
from gpumod.core.render import render_plan
from gpumod.execute import StepOutcome

BAR_WIDTH = 40
STATE_STYLE = {
    "running": "green",
    "sleeping": "cyan",
    "starting": "yellow",
    "unhealthy": "red",
    "failed": "red",
    "stopped": "dim",
    "absent": "dim",
}


def print_plan(console: Console, plan: Plan) -> None:
    for line in render_plan(plan):
        console.print(line, markup=False)


class ConsoleReporter(Reporter):
    """Prints the plan and one line per finished step; collects outcomes for the JSON view."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.plans: list[Plan] = []
        self.outcomes: list[tuple[str, StepOutcome]] = []

    def plan(self, plan: Plan, pass_no: int) -> None:
        self.plans.append(plan)
        if self.quiet:
            return
        if pass_no > 1:
            self.console.print(f"[dim]pass {pass_no}: the pods still differ from the specs[/]")
        print_plan(self.console, plan)

    def step(self, event: str, pod: str, item: Step | StepOutcome) -> None:
        if event != "done" or not isinstance(item, StepOutcome):
            return
        self.outcomes.append((pod, item))
        if self.quiet:
            return
        s = item.step
        mark = {"ok": "[green]ok[/]", "failed": "[red]FAILED[/]", "skipped": "[yellow]skipped[/]"}[item.status]
        msg = f" — {item.message}" if item.message else ""
        self.console.print(
            f"  {pod}: {s.symbol} {s.action} {s.service} … {mark} ({item.seconds:.1f}s){msg}",
            highlight=False,
        )

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[dim]{text}[/]")


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
            lines.append(f"Converged: {pods} match the specs." if pods else "Converged.")
    elif not result.problems:
        lines.append("Not converged.")
    return lines


def apply_json(result: ApplyResult, reporter: ConsoleReporter) -> dict[str, Any]:
    return {
        "converged": result.converged,
        "passes": result.passes,
        "plans": [p.to_json() for p in reporter.plans],
        "steps": [
            {
                "pod": pod,
                "action": o.step.action,
                "service": o.step.service,
                "status": o.status,
                "message": o.message,
                "seconds": round(o.seconds, 3),
            }
            for pod, o in reporter.outcomes
        ],
        "problems": result.problems,
    }


# -- status ----------------------------------------------------------------------------------


def _since(started_at: float | None, now: float) -> str:
    if not started_at:
        return "-"
    secs = int(max(0, now - started_at))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h{(secs % 3600) // 60:02d}m"


def status_rows(snap: Snapshot) -> dict[str, list[dict[str, Any]]]:
    pods: dict[str, list[dict[str, Any]]] = {}
    for pod in snap.pods:
        desired = snap.desired_pod(pod.name)
        observed = snap.observed_pod(pod.name)
        pod_plan = snap.plan.pod(pod.name)
        rows = []
        names = sorted(
            {s.name for s in (desired.services if desired else ())}
            | {s.name for s in (observed.services if observed else ())}
        )
        for name in names:
            want = desired.service(name) if desired else None
            got = observed.service(name) if observed else None
            gpus = got.gpus if got and got.gpus else (pod_plan.gpus_of(name) if pod_plan else ())
            used = sum(got.measured(g) for g in gpus) if got else 0
            if want:
                asleep = got is not None and got.status == "sleeping"
                budget = (want.footprint.asleep_mb if asleep else want.footprint.awake_mb) * max(1, len(gpus))
            else:
                budget = None
            rows.append(
                {
                    "service": name,
                    "state": got.status if got else "absent",
                    "target": want.target if want else "not in mode",
                    "sleep_level": got.sleep_level if got else None,
                    "gpus": list(gpus),
                    "vram_used_mb": used,
                    "vram_budget_mb": budget,
                    "port": (got.port if got and got.port else (want.spec.port if want else None)),
                    "pid": got.pid if got else None,
                    "since": got.started_at if got else None,
                    "message": got.message if got else "",
                }
            )
        pods[pod.name] = rows
    return pods


def status_json(snap: Snapshot) -> dict[str, Any]:
    rows = status_rows(snap)
    result: dict[str, Any] = {"pods": {}}
    for pod in snap.pods:
        observed = snap.observed_pod(pod.name)
        desired = snap.desired_pod(pod.name)
        result["pods"][pod.name] = {
            "mode": pod.mode,
            "host": pod.host,
            "reachable": observed.reachable if observed else False,
            "error": observed.error if observed else "",
            "gpus": [
                {"index": g.index, "name": g.name, "total_mb": g.total_mb, "used_mb": g.used_mb}
                for g in (observed.gpus if observed and observed.gpus else (desired.gpus if desired else ()))
            ],
            "services": rows[pod.name],
            "changes_pending": len(snap.plan.pod(pod.name).steps) if snap.plan.pod(pod.name) else 0,
        }
    return result


def status_table(snap: Snapshot, *, visual: bool = False) -> list[Any]:
    from rich.table import Table  # only `status` draws tables

    now = max((o.observed_at for o in snap.observed), default=time.time()) or time.time()
    out: list[Any] = []
    rows = status_rows(snap)
    for pod in snap.pods:
        observed = snap.observed_pod(pod.name)
        reach = "" if observed is None or observed.reachable else f"  [red]unreachable: {observed.error}[/]"
        pending = snap.plan.pod(pod.name)
        drift = f"  [yellow]{len(pending.steps)} change(s) pending[/]" if pending and pending.steps else ""
        table = Table(title=f"pod {pod.name} · mode {pod.mode} · {pod.host}", title_justify="left")
        notes = any(r["message"] and r["state"] not in ("running", "sleeping") for r in rows[pod.name])
        for col in ("service", "state", "target", "GPU", "VRAM used/budget", "port", "since") + (
            ("note",) if notes else ()
        ):
            table.add_column(col)
        for r in rows[pod.name]:
            state = r["state"] + (f" ({r['sleep_level']})" if r["sleep_level"] else "")
            budget = "-" if r["vram_budget_mb"] is None else f"{r['vram_budget_mb']}"
            table.add_row(
                r["service"],
                Text(state, style=STATE_STYLE.get(r["state"], "")),
                r["target"],
                ",".join(map(str, r["gpus"])) or "-",
                f"{r['vram_used_mb']}/{budget} MiB",
                str(r["port"] or "-"),
                _since(r["since"], now),
                *((r["message"] if r["state"] not in ("running", "sleeping") else "",) if notes else ()),
            )
        out.append(table)
        if reach or drift:
            out.append(Text.from_markup(reach + drift))
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


def _budget_lines(g: GpuBudget) -> list[str]:
    lines = [f"GPU {g.index} {g.name} ({g.capacity_mb} MiB)", f"  {bar(g.need_mb, g.capacity_mb)}"]
    for who, mb in g.users:
        lines.append(f"    {who:<28} {mb:>7} MiB")
    return lines


def render_simulation(snap: Snapshot, pod: str, mode: str | None, add: list[str]) -> tuple[list[str], bool]:
    spec = next(p for p in snap.pods if p.name == pod)
    title = f"pod {pod} · mode {mode or spec.mode}" + (f" + {', '.join(add)}" if add else "")
    lines = [title]
    pod_plan = snap.plan.pod(pod)
    if pod_plan is None:
        return lines + ["pod not planned"], False
    if pod_plan.infeasible is not None:
        for s in pod_plan.infeasible.shortfalls:
            lines += _budget_lines(GpuBudget(s.gpu, s.gpu_name, s.capacity_mb, s.need_mb, s.users))
            lines.append(f"  ✗ exceeds by {s.over_mb} MiB ({s.over_mb / 1024:.1f} GiB)")
        if pod_plan.infeasible.alternatives:
            lines.append("Alternatives:")
            lines += [f"  - {a.text}" for a in pod_plan.infeasible.alternatives]
        return lines, False
    for g in pod_plan.gpus:
        lines += _budget_lines(g)
    lines.append(f"✓ fits ({len(pod_plan.steps)} step(s) to get there from what runs now)")
    return lines, True
