"""How results look to a person (rich tables, ASCII VRAM bars, recaps) and to a script (JSON).

Pure formatting over the typed results of ``gpumod.controller``; no logic decides anything here.
Nothing that comes from a pod or a spec (service output, error messages, names, hosts) is ever
parsed as rich markup: styled lines are built as ``Text`` from plain strings (``styled``).
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
from gpumod.whatif import Simulation

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
            self.console.print(Text(f"pass {pass_no}: the pods still differ from the specs", style="dim"))
        print_plan(self.console, plan)

    def step(self, event: str, pod: str, item: Step | StepOutcome) -> None:
        if event != "done" or not isinstance(item, StepOutcome):
            return
        self.outcomes.append((pod, item))
        if self.quiet:
            return
        s = item.step
        mark = {"ok": ("ok", "green"), "failed": ("FAILED", "red"), "skipped": ("skipped", "yellow")}[item.status]
        msg = f" — {item.message}" if item.message else ""
        self.console.print(
            styled(f"  {pod}: {s.symbol} {s.action} {s.service} … ", mark, f" ({item.seconds:.1f}s){msg}"),
            highlight=False,
        )

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(Text(text, style="dim"))


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
        deferred = {d.service: d for d in (pod_plan.deferred if pod_plan else ())}
        for name in names:
            want = desired.service(name) if desired else None
            got = observed.service(name) if observed else None
            later = deferred.get(name)
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
                    # a desired service whose starts keep failing: how often, why, when again
                    "degraded": bool(want and got and got.failures >= 1 and not got.alive),
                    "failures": got.failures if got else 0,
                    "last_failure_at": got.last_failure_at if got else None,
                    "last_error": got.last_error if got else "",
                    "last_log_line": got.last_log_line if got else "",
                    "retry_at": later.retry_at if later else None,
                    "deferred": later.reason if later else "",
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
        pending = snap.plan.pod(pod.name)
        table = Table(title=Text(f"pod {pod.name} · mode {pod.mode} · {pod.host}"), title_justify="left")
        notes = {r["service"]: _note(r, now) for r in rows[pod.name]}
        for col in ("service", "state", "target", "GPU", "VRAM used/budget", "port", "since") + (
            ("note",) if any(notes.values()) else ()
        ):
            table.add_column(col)
        for r in rows[pod.name]:
            state = "degraded" if r["degraded"] else r["state"] + (f" ({r['sleep_level']})" if r["sleep_level"] else "")
            budget = "-" if r["vram_budget_mb"] is None else f"{r['vram_budget_mb']}"
            cells = [
                r["service"],
                state,
                r["target"],
                ",".join(map(str, r["gpus"])) or "-",
                f"{r['vram_used_mb']}/{budget} MiB",
                str(r["port"] or "-"),
                _since(r["since"], now),
                *((notes[r["service"]],) if any(notes.values()) else ()),
            ]
            texts = [Text(c) for c in cells]
            texts[1].stylize("red" if r["degraded"] else STATE_STYLE.get(r["state"], ""))
            table.add_row(*texts)
        out.append(table)
        for r in rows[pod.name]:
            if r["degraded"] and (r["last_error"] or r["last_log_line"]):
                out.append(Text(f"  {r['service']}: last failed start: {r['last_error'] or '?'}", style="red"))
                if r["last_log_line"]:
                    out.append(Text(f"    its last log line: {r['last_log_line']}"))
        parts: list[str | tuple[str, str]] = []
        if observed is not None and not observed.reachable:
            parts.append((f"  unreachable: {observed.error}", "red"))
        if pending and pending.steps:
            parts.append((f"  {len(pending.steps)} change(s) pending", "yellow"))
        if parts:
            out.append(styled(*parts))
        if visual and observed and observed.gpus:
            for g in observed.gpus:
                out.append(Text(f"GPU {g.index} {g.name}  {bar(g.used_mb, g.total_mb)}"))
    return out


def _note(row: dict[str, Any], now: float) -> str:
    """The note column: why a service is not as wanted (degraded, deferred, or what the pod said)."""
    if row["degraded"]:
        n = row["failures"]
        retry = row["retry_at"]
        when = f"retry in {max(1, int(retry - now + 0.999))}s" if retry and retry > now else "retry at the next apply"
        return f"{n} failed start{'s' if n != 1 else ''}; {when}"
    if row["deferred"]:
        return row["deferred"]
    if row["message"] and row["state"] not in ("running", "sleeping"):
        return str(row["message"])
    return ""


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


def _budgets(snap: Snapshot, pod: str) -> dict[int, GpuBudget]:
    found = snap.plan.pod(pod)
    return {g.index: g for g in found.gpus} if found else {}


def render_simulation(sim: Simulation) -> list[str]:
    """Current (the pod's mode, as planned now) and proposed (the what-if) side by side, per GPU:
    who uses what, both bars, fits or by how much not; then the alternatives."""
    spec = next(p for p in sim.current.pods if p.name == sim.pod)
    proposed_plan = sim.proposed.plan.pod(sim.pod)
    lines = [f"pod {sim.pod}", f"  current:  mode {spec.mode}", f"  proposed: {_what(sim.mode or spec.mode, sim.services, sim.add, sim.dependencies)}"]
    if sim.unobserved:
        lines.append(f"  (not observed: {sim.unobserved}; priced on the declared GPUs with nothing running)")
    now, then = _budgets(sim.current, sim.pod), _budgets(sim.proposed, sim.pod)
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
        lines.append(f"  {'total':<{width}} {_mib(cur.need_mb if cur else None):>12} {_mib(new.need_mb if new else None):>12}")
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


def simulation_json(sim: Simulation) -> dict[str, Any]:
    def side(snap: Snapshot, mode: str | None) -> dict[str, Any]:
        found = snap.plan.pod(sim.pod)
        desired = snap.desired_pod(sim.pod)
        planned = snap.plan.to_json()["pods"].get(sim.pod)
        return {
            "mode": mode,
            "services": [s.name for s in desired.services] if desired else [],
            "fits": bool(found and found.fits),
            "gpus": planned["gpus"] if planned else [],
            "infeasible": planned["infeasible"] if planned else None,
            "steps": len(found.steps) if found else 0,
        }

    spec = next(p for p in sim.current.pods if p.name == sim.pod)
    proposed = side(sim.proposed, None if sim.services is not None else (sim.mode or spec.mode))
    proposed.update(add=list(sim.add), dependencies=list(sim.dependencies))
    return {
        "pod": sim.pod,
        "fits": sim.fits,
        "unobserved": sim.unobserved,
        "current": side(sim.current, spec.mode),
        "proposed": proposed,
    }
