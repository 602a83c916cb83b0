"""What the TUI draws, as rich ``Text`` built from the typed results of ``gpumod.ops`` (pure).

Why a module of its own: the widgets only place these lines; keeping the drawing pure lets the
tests check a bar or a simulation against a fixed result without starting an app. Every figure
comes computed from the operations layer (the same VRAM used/budget, notes and verdicts the CLI
and the MCP server show); here it is only laid out. Nothing that comes from a pod or a spec is
ever read as markup: every line is assembled from plain strings (``Text.assemble``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Iterable

from rich.text import Text

from gpumod.core.model import GpuBudget, GpuInfo, Plan
from gpumod.core.render import render_plan
from gpumod.errors import GpumodError, InfeasibleError, SpecError, StalePlanError
from gpumod.ops.apply import ApplyResult
from gpumod.ops.events import (
    Event, Note, PassStarted, PlanBuilt, Progress, RunFailed, RunFinished, StepFinished, StepStarted,
)
from gpumod.ops.logs import LogsResult
from gpumod.ops.simulate import SimulationResult
from gpumod.ops.status import PodStatus, ServiceStatus, StatusResult, since_text

__all__ = [
    "BAR_WIDTH",
    "COLUMNS",
    "Segment",
    "error_lines",
    "event_lines",
    "gpu_segments",
    "logs_lines",
    "plan_lines",
    "pod_title",
    "segmented_bar",
    "simulation_lines",
    "status_bars",
    "table_rows",
]

BAR_WIDTH = 60
COLUMNS = ("service", "state", "target", "GPU", "VRAM used/budget", "port", "since", "why not running")
PALETTE = ("green", "blue", "magenta", "cyan", "yellow", "bright_green", "bright_blue", "bright_magenta", "red")
FOREIGN = "not gpumod's"
RESERVE = "reserve"


@dataclass(frozen=True)
class Segment:
    """One part of a GPU's bar: a service (awake or asleep), memory gpumod does not manage, or the
    pod's reserve."""

    label: str
    mb: int
    kind: str  # "awake" | "asleep" | "foreign" | "reserve" | "headroom" (standby wake-ups)
    colour: str


def _colours(names: Iterable[str]) -> dict[str, str]:
    """A stable colour per service name (sorted order), the same in every bar and legend."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(set(names)))}


def gpu_segments(result: StatusResult, pod: PodStatus, gpu: GpuInfo) -> list[Segment]:
    """Who holds what on one GPU now: each service's measured MiB there (awake or asleep), the
    rest of the GPU's used memory as "not gpumod's", and the pod's reserve."""
    colours = _colours(s.service for s in pod.services)
    observed = result.snapshot.observed_pod(pod.pod) if result.snapshot is not None else None
    segments: list[Segment] = []
    for row in pod.services:
        if gpu.index not in row.gpus or row.vram_used_mb <= 0:
            continue
        got = observed.service(row.service) if observed is not None else None
        mb = got.measured(gpu.index) if got is not None else row.vram_used_mb // max(1, len(row.gpus))
        if mb <= 0:
            continue
        kind = "asleep" if row.state == "sleeping" else "awake"
        segments.append(Segment(row.service, mb, kind, colours[row.service]))
    managed = sum(s.mb for s in segments)
    foreign = max(0, gpu.used_mb - managed)
    if foreign:
        segments.append(Segment(FOREIGN, foreign, "foreign", "grey50"))
    reserve = _reserve_mb(result, pod.pod)
    if reserve:
        segments.append(Segment(RESERVE, reserve, "reserve", "grey35"))
    return segments


def _reserve_mb(result: StatusResult, pod: str) -> int:
    if result.snapshot is None:
        return 0
    spec = next((p for p in result.snapshot.pods if p.name == pod), None)
    return int(getattr(spec, "reserve_mb", 0) or 0) if spec is not None else 0


OVER = "▞"
GLYPH = {"awake": "█", "asleep": "▒", "foreign": "█", "reserve": "╳", "headroom": "▓"}


def segmented_bar(segments: list[Segment], total_mb: int, width: int = BAR_WIDTH) -> Text:
    """``[████▒▒▒╳╳░░░░]`` with one coloured run per segment (cumulative rounding, so the runs add
    up to the MiB they stand for; a segment that holds anything gets at least one cell) and free
    space as ``░``. When the segments exceed the GPU the bar is drawn to their sum instead, the
    cells past the GPU's size as ``▞`` on red, and ``!`` follows the bracket."""
    used = sum(s.mb for s in segments)
    scale_mb = max(total_mb, used)
    scale = width / scale_mb if scale_mb > 0 else 0.0
    capacity = width if used <= total_mb else round(total_mb * scale)
    cells: list[tuple[str, str]] = []
    acc = 0
    for seg in segments:
        acc += seg.mb
        if seg.mb <= 0:
            continue
        end = min(width, max(len(cells) + 1, round(acc * scale)))
        style = seg.colour if seg.kind != "asleep" else f"dim {seg.colour}"
        cells += [(GLYPH[seg.kind], style)] * max(0, end - len(cells))
    cells += [("░", "grey23")] * (width - len(cells))
    past = [(OVER, f"{style} on red") for _, style in cells[capacity:]]  # past the GPU's size
    bar = Text("[")
    for (glyph, style), run in groupby(cells[:capacity] + past):
        bar.append(glyph * len(list(run)), style=style)
    bar.append("]")
    if used > total_mb:
        bar.append("!", style="bold red")
    return bar


def _gib(mb: int) -> str:
    return f"{mb / 1024:.1f}"


def legend(segments: list[Segment]) -> Text:
    line = Text("  ")
    for seg in segments:
        style = seg.colour if seg.kind != "asleep" else f"dim {seg.colour}"
        line.append(GLYPH[seg.kind], style=style)
        line.append(f" {seg.label} {seg.mb} MiB" + (" (asleep)" if seg.kind == "asleep" else "") + "  ")
    return line


def status_bars(result: StatusResult, pod: PodStatus, width: int = BAR_WIDTH) -> list[Text]:
    """One bar per GPU of the pod with its legend; a line saying why when there is none."""
    if not pod.gpus:
        why = pod.error or "the pod reports no GPU"
        return [Text(f"no GPU to show: {why}", style="dim")]
    lines: list[Text] = []
    for gpu in pod.gpus:
        segs = gpu_segments(result, pod, gpu)
        used = sum(s.mb for s in segs)
        head = Text.assemble(
            (f"GPU {gpu.index} ", "bold"), gpu.name, f"  {_gib(used)}/{_gib(gpu.total_mb)} GiB ",
            (f"({used / gpu.total_mb:.0%})" if gpu.total_mb else "", ""),
        )
        lines.append(head)
        lines.append(Text.assemble("  ", segmented_bar(segs, gpu.total_mb, width)))
        lines.append(legend(segs))
    return lines


def pod_title(pod: PodStatus) -> Text:
    title = Text.assemble(("pod ", "bold"), pod.pod, " · mode ", (pod.mode, "bold"), " · ", pod.host)
    if not pod.reachable:
        title.append(f"  unreachable: {pod.why_unreachable}", style="red")
    if pod.changes_pending:
        title.append(f"  {pod.changes_pending} change(s) pending", style="yellow")
    return title


def table_rows(result: StatusResult, pod: PodStatus) -> list[tuple[Text, ...]]:
    """The service table's rows, one per service, in the order of ``COLUMNS``."""
    rows = []
    for r in pod.services:
        rows.append(_row(r, result.now))
    return rows


def _row(r: ServiceStatus, now: float) -> tuple[Text, ...]:
    cells = (
        Text(r.service),
        Text(r.state_label, style=r.state_style),
        Text(r.target),
        Text(",".join(map(str, r.gpus)) or "-"),
        Text(r.vram_text),
        Text(str(r.port or "-")),
        Text(since_text(r.since, now)),
        Text(r.note, style="yellow" if r.note else ""),
    )
    return cells


# -- the output panel ------------------------------------------------------------------------


def event_lines(e: Event) -> list[Text]:
    """One operation event as output-panel lines (a step as it starts and as it ends)."""
    if isinstance(e, PassStarted):
        return [Text(f"pass {e.pass_no}: {', '.join(e.pods)}", style="dim")]
    if isinstance(e, PlanBuilt):
        return plan_lines(e.plan)
    if isinstance(e, StepStarted):
        s = e.step
        return [Text(f"  {e.pod}: {s.symbol} {s.action} {s.service} …", style="dim")]
    if isinstance(e, StepFinished):
        o, s = e.outcome, e.outcome.step
        mark = {"ok": ("ok", "green"), "failed": ("FAILED", "red"), "skipped": ("skipped", "yellow")}[o.status]
        msg = f" — {o.message}" if o.message else ""
        return [Text.assemble(f"  {e.pod}: {s.symbol} {s.action} {s.service} … ", mark, f" ({o.seconds:.1f}s){msg}")]
    if isinstance(e, Note):
        return [Text(e.text, style="dim" if e.detail else "")]
    if isinstance(e, Progress):
        return [Text(f"  {e.line()}", style="dim")]
    if isinstance(e, RunFinished):
        return recap_lines(e.result)
    if isinstance(e, RunFailed):
        return error_lines(e.error)
    return []


def recap_lines(result: ApplyResult) -> list[Text]:
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    for step in result.steps:
        counts[step.outcome.status] += 1
    line = Text(f"{len(result.steps)} step(s): ok={counts['ok']} failed={counts['failed']} skipped={counts['skipped']}")
    lines = [line, *(Text(f"problem: {p}", style="red") for p in result.problems)]
    if result.converged and not result.problems:
        lines.append(Text("converged: the pod matches the specs", style="green"))
    elif not result.problems:
        lines.append(Text("not converged", style="yellow"))
    return lines


def plan_lines(plan: Plan) -> list[Text]:
    if not plan.changes and all(p.fits for p in plan.pods):
        return [Text(f"pod {p.pod}: nothing to do (matches the specs)") for p in plan.pods]
    return [Text(line) for line in render_plan(plan)]


def error_lines(err: BaseException, tb: str = "") -> list[Text]:
    """An error as the CLI words it: problems, shortfalls with alternatives, message, hint."""
    lines: list[Text] = []
    if isinstance(err, SpecError):
        lines += [Text(str(p)) for p in err.problems]
    if isinstance(err, InfeasibleError):
        for inf in err.infeasible:
            lines += [Text(line) for line in inf.describe().splitlines()]
    if isinstance(err, StalePlanError):
        lines += [Text(f"  {c}") for c in err.changes]
    if isinstance(err, GpumodError):
        lines.append(Text.assemble(("error:", "red"), " ", err.message))
        if err.hint:
            lines.append(Text(f"hint: {err.hint}", style="dim"))
        return lines
    if tb:
        lines += [Text(line) for line in tb.rstrip().splitlines()]
    lines.append(Text(f"{type(err).__name__}: {err} — this is a bug in gpumod (please report it)", style="red"))
    return lines


def logs_lines(result: LogsResult) -> list[Text]:
    """A service's last log lines, verbatim (never markup), under the pod they came from."""
    lines: list[Text] = []
    for pod, text in sorted(result.pods.items()):
        lines.append(Text(f"── {result.service} on {pod} ──", style="bold"))
        lines += [Text(line) for line in text.splitlines()]
    return lines


# -- simulate --------------------------------------------------------------------------------


def _budget_segments(b: GpuBudget, colours: dict[str, str]) -> list[Segment]:
    """A planned GPU's users as segments: services by their label (``glm-code (asleep)``), the
    planner's other lines (standby headroom, memory it does not manage, the reserve) in grey."""
    segs = []
    for who, mb in b.users:
        name, _, tags = who.partition(" (")
        if name in colours:
            segs.append(Segment(who, mb, "asleep" if "asleep" in tags else "awake", colours[name]))
        elif who == RESERVE:
            segs.append(Segment(who, mb, "reserve", "grey35"))
        elif who.startswith("other processes"):
            segs.append(Segment(who, mb, "foreign", "grey50"))
        else:
            segs.append(Segment(who, mb, "headroom", "grey62"))
    return segs


def simulation_lines(sim: SimulationResult, width: int = BAR_WIDTH) -> list[Text]:
    """Current and proposed per GPU as segmented bars, how far over a GPU is, the alternatives."""
    what = f"services {', '.join(sim.services)}" if sim.services is not None else f"mode {sim.proposed_mode}"
    if sim.add:
        what += f" + {', '.join(sim.add)}"
    if sim.dependencies:
        what += f" (+ {', '.join(sim.dependencies)}, needed)"
    lines = [Text.assemble(("simulate ", "bold"), f"pod {sim.pod}: mode {sim.current_mode} → {what}")]
    if sim.unobserved:
        lines.append(Text(f"  not observed ({sim.unobserved}): priced with nothing running", style="dim"))
    now, then = sim.budgets(sim.current), sim.budgets(sim.proposed)
    colours = _colours(s.name for snap in (sim.current, sim.proposed) for d in snap.desired for s in d.services)
    for index in sorted(set(now) | set(then)):
        gpu = then.get(index) or now[index]
        lines.append(Text.assemble((f"GPU {index} ", "bold"), f"{gpu.name} ({gpu.capacity_mb} MiB)"))
        for label, b in (("current ", now.get(index)), ("proposed", then.get(index))):
            if b is None:
                continue
            segs = _budget_segments(b, colours)
            over = b.need_mb - b.capacity_mb
            verdict = ("fits", "green") if over <= 0 else (f"✗ over by {over} MiB ({over / 1024:.1f} GiB)", "bold red")
            figures = f" {_gib(b.need_mb)}/{_gib(b.capacity_mb)} GiB "
            lines.append(Text.assemble(f"  {label} ", segmented_bar(segs, b.capacity_mb, width), figures, verdict))
            if label == "proposed":
                lines.append(legend(segs))
    found = sim.proposed.plan.pod(sim.pod)
    inf = found.infeasible if found is not None else None
    if inf is not None and inf.alternatives:
        lines.append(Text("alternatives:", style="bold"))
        lines += [Text(f"  - {a.text}") for a in inf.alternatives]
    if sim.fits:
        steps = len(found.steps) if found is not None else 0
        lines.append(Text(f"✓ fits ({steps} step(s) to get there from what runs now)", style="green"))
    else:
        lines.append(Text("✗ does not fit", style="bold red"))
    return lines
