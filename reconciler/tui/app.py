"""``gpumod tui DIR``: the live dashboard — VRAM bars, the service table, an output panel that
streams a running pass, a pod selector and a command line.

A thin face over ``gpumod.ops``, like the CLI and the MCP server, so the three show the same
figures. Every operation runs in a Textual thread worker with its own event loop, so the UI never
waits on a pod; the worker's ``Reporter`` posts each event to the app as a message, which the
output panel writes as it comes. Only one pass (``/switch``, ``/apply``) runs at a time; a second
is refused with a note. The pod is re-observed on a timer and after every command (an observation
asked for while one runs is done again right after it, so the last word is always fresh).
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Awaitable, Callable

from rich.text import Text
from textual.app import App, ComposeResult, ScreenStackError
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Select

from gpumod.ops import apply as ops_apply
from gpumod.ops import logs as ops_logs
from gpumod.ops import plan as ops_plan
from gpumod.ops import simulate as ops_simulate
from gpumod.ops import status as ops_status
from gpumod.ops import switch_mode as ops_switch
from gpumod.ops.events import Event, Progress, ProgressLines, StepFinished
from gpumod.ops.status import PodStatus, StatusResult
from gpumod.tui import render
from gpumod.tui.commands import HELP, Command, CommandError, parse
from gpumod.tui.widgets import CommandLine, OutputLog, PodTitle, ServiceTable, VramBars

__all__ = ["GpumodTui"]

Lines = list[Text]


class Observed(Message):
    """A fresh status of the fleet (from the timer, a command, or the end of a pass)."""

    def __init__(
        self,
        result: StatusResult | None,
        error: BaseException | None = None,
        tb: str = "",
        *,
        by_command: bool = False,
    ) -> None:
        super().__init__()
        self.result, self.error, self.tb = result, error, tb
        self.by_command = by_command  # from `/status`, not from ``observe`` (whose flag it leaves alone)


class OpEvent(Message):
    """One event of a running operation (a step started or ended, a note, the recap)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class Output(Message):
    """Lines a command answered with."""

    def __init__(self, lines: Lines) -> None:
        super().__init__()
        self.lines = lines


class Done(Message):
    """A command's worker ended (whatever happened)."""

    def __init__(self, command: Command) -> None:
        super().__init__()
        self.command = command


class _PostingReporter:
    """The ``Reporter`` of a worker: every event goes to the app as a message (thread-safe)."""

    def __init__(self, app: App[None]) -> None:
        self.app = app

    def event(self, e: Event) -> None:
        self.app.post_message(OpEvent(e))


class GpumodTui(App[None]):
    """The dashboard of one spec directory's pods."""

    TITLE = "gpumod"
    CSS = """
    #pod { width: 40; height: auto; }
    CommandLine { dock: bottom; }
    """
    BINDINGS = [Binding("ctrl+c", "quit", "quit", show=False, priority=True)]

    def __init__(self, spec_dir: str | Path, *, refresh_s: float = 5.0, live: bool = True) -> None:
        """``live=False``: observe nothing (a screen fed with ``show_status``, for snapshots)."""
        super().__init__()
        self.spec_dir = Path(spec_dir)
        self.refresh_s = refresh_s
        self.live = live
        self.result: StatusResult | None = None
        self.pod_name: str | None = None
        self.pass_running: str | None = None  # the command line of the pass that runs
        self.first_live_frame_at: float | None = None  # time.perf_counter() of the first status shown
        self._observing = False
        self._observe_again = False
        self._quit_after_pass = False
        self._downloads = ProgressLines()  # which download events get a line
        self._last_error = ""
        self._pod_names: list[str] = []  # the selector's options

    def compose(self) -> ComposeResult:
        yield Select[str]([], prompt="pod", id="pod", allow_blank=True)
        yield PodTitle(id="title")
        yield VramBars(id="bars")
        yield ServiceTable(id="table")
        yield OutputLog(id="output")
        yield CommandLine(id="command")

    def on_mount(self) -> None:
        self.query_one("#pod", Select).display = False
        self.query_one(VramBars).show([])
        self.query_one(OutputLog).say([Text.assemble(("gpumod tui", "bold"), f" — {self.spec_dir}; ? for help")])
        self.query_one(CommandLine).focus()
        if self.live:
            self.observe()
            self.set_interval(self.refresh_s, self.observe)

    # -- observing -------------------------------------------------------------------------

    def observe(self) -> None:
        """Observe the fleet in a worker; while one observation runs, ask for one more after it."""
        if self._observing:
            self._observe_again = True
            return
        self._observing = True
        self._observe_again = False
        self.run_worker(self._observe(), thread=True, group="observe", exit_on_error=False)

    async def _observe(self) -> None:
        try:
            result = await ops_status.status(self.spec_dir)
        except Exception as e:
            self.post_message(Observed(None, e, traceback.format_exc()))
        else:
            self.post_message(Observed(result))

    def _gone(self) -> bool:
        """The screen is torn down (the app is quitting): a worker's late message has nowhere to go."""
        try:
            return not self.query(PodTitle)
        except (NoMatches, ScreenStackError):
            return True

    def on_observed(self, message: Observed) -> None:
        if self._gone():
            return
        if not message.by_command:
            self._observing = False
        if message.result is not None:
            self._last_error = ""
            self.show_status(message.result)
        elif message.error is not None:
            lines = render.error_lines(message.error, message.tb)
            text = "\n".join(line.plain for line in lines)
            if text != self._last_error:  # the timer would repeat it every few seconds
                self._last_error = text
                self.query_one(OutputLog).say(lines)
        if self._observe_again and self.live and not self._observing:
            self.observe()

    def show_status(self, result: StatusResult) -> None:
        """Draw a status: the pod selector (shown for a fleet), the title, the bars, the table."""
        self.result = result
        names = [p.pod for p in result.pods]
        select = self.query_one("#pod", Select)
        if self.pod_name not in names:
            self.pod_name = names[0] if names else None
        if self._pod_names != names:
            self._pod_names = names
            select.set_options([(n, n) for n in names])
            if self.pod_name is not None:
                select.value = self.pod_name
        select.display = len(names) > 1
        self._draw()
        if self.first_live_frame_at is None:
            self.first_live_frame_at = time.perf_counter()

    def _pod(self) -> PodStatus | None:
        if self.result is None or self.pod_name is None:
            return None
        return self.result.pod(self.pod_name)

    def _draw(self) -> None:
        pod = self._pod()
        if self.result is None or pod is None:
            return
        self.query_one(PodTitle).update(render.pod_title(pod))
        self.query_one(VramBars).show(render.status_bars(self.result, pod, self._bar_width()))
        self.query_one(ServiceTable).show(render.table_rows(self.result, pod))

    def _bar_width(self) -> int:
        return max(20, min(render.BAR_WIDTH, self.size.width - 30))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "pod" and isinstance(event.value, str) and event.value != self.pod_name:
            self.pod_name = event.value
            self._draw()

    # -- the command line ------------------------------------------------------------------

    def on_input_submitted(self, event: CommandLine.Submitted) -> None:
        line = event.value.strip()
        event.input.value = ""
        if not line:
            return
        out = self.query_one(OutputLog)
        out.say([Text(f"> {line}", style="bold")])
        try:
            command = parse(line)
        except CommandError as e:
            out.say([Text.assemble(("error:", "red"), " ", str(e))])
            return
        self.run_command(command, line)

    def run_command(self, command: Command, line: str = "") -> None:
        out = self.query_one(OutputLog)
        if command.name == "help":
            out.say([Text(h) for h in HELP.splitlines()])
            return
        if command.name == "quit":
            self._leave()
            return
        if command.name == "pod":
            self._choose_pod(command.arg)
            return
        if command.is_pass:
            if self.pass_running:
                out.say([Text(
                    f"refused: a pass is running ({self.pass_running}); run it again when it ends", style="yellow",
                )])
                return
            self.pass_running = line or f"/{command.name}"
        work = self._work_for(command)
        self.run_worker(self._run(command, work), thread=True, group="commands", exit_on_error=False)

    async def action_quit(self) -> None:
        """Ctrl+C: as /quit (a running pass is not cut in the middle of a step)."""
        self._leave()

    def _leave(self) -> None:
        if not self.pass_running:
            self.exit()
            return
        self._quit_after_pass = True
        note = f"a pass is running ({self.pass_running}); leaving when it ends"
        self.query_one(OutputLog).say([Text(note, style="yellow")])

    def _choose_pod(self, name: str) -> None:
        names = [p.pod for p in self.result.pods] if self.result else []
        if name not in names:
            self.query_one(OutputLog).say([Text.assemble(
                ("error:", "red"), " ", f"no pod named {name}", (f" (pods: {', '.join(names) or 'none yet'})", "dim"),
            )])
            return
        self.pod_name = name
        self.query_one("#pod", Select).value = name
        self._draw()

    def _work_for(self, command: Command) -> Callable[[], Awaitable[Lines]]:
        """What a command does, as a coroutine function run in the worker's own loop."""
        spec_dir, pod = self.spec_dir, self.pod_name
        pods = [pod] if pod else None
        reporter = _PostingReporter(self)
        width = self._bar_width()

        async def status() -> Lines:
            result = await ops_status.status(spec_dir)
            self.post_message(Observed(result, by_command=True))
            return [_summary(p) for p in result.pods]

        async def switch() -> Lines:
            done = await ops_switch.switch_mode(spec_dir, command.arg, pod, reporter=reporter)
            return [Text(done.edit.summary)]

        async def apply() -> Lines:
            await ops_apply.apply(spec_dir, pods, reporter=reporter)
            return []  # the recap came as RunFinished

        async def plan() -> Lines:
            found = await ops_plan.plan(spec_dir, pods)
            lines = render.plan_lines(found.plan)
            lines += [Text(f"pod {o.name} not observed: {o.why_unreachable}", style="red") for o in found.unreachable]
            return lines

        async def simulate() -> Lines:
            if pod is None:
                return [Text("no pod observed yet; try again in a moment", style="yellow")]
            sim = await ops_simulate.simulate(spec_dir, pod, mode=command.mode, add=command.add)
            return render.simulation_lines(sim, width)

        async def logs() -> Lines:
            found = await ops_logs.logs(spec_dir, command.arg, pods, command.lines)
            return render.logs_lines(found)

        work: dict[str, Callable[[], Awaitable[Lines]]] = {
            "status": status, "switch": switch, "apply": apply, "plan": plan, "simulate": simulate, "logs": logs,
        }
        return work[command.name]

    async def _run(self, command: Command, work: Callable[[], Awaitable[Lines]]) -> None:
        try:
            lines = await work()
        except Exception as e:
            lines = render.error_lines(e, traceback.format_exc())
        try:
            self.post_message(Output(lines))
        finally:
            self.post_message(Done(command))

    def on_op_event(self, message: OpEvent) -> None:
        if self._gone():
            return
        if isinstance(message.event, Progress) and not self._downloads.due(message.event):
            return  # a line per tenth of a download, not per chunk
        self.query_one(OutputLog).say(render.event_lines(message.event))
        if isinstance(message.event, StepFinished):
            self.observe()  # the bars follow the pass step by step

    def on_output(self, message: Output) -> None:
        if self._gone():
            return
        self.query_one(OutputLog).say(message.lines)

    def on_done(self, message: Done) -> None:
        if message.command.is_pass:
            self.pass_running = None
            if self._quit_after_pass:
                self.exit()
                return
        if message.command.name != "status" and self.live and not self._gone():
            self.observe()


def _summary(pod: PodStatus) -> Text:
    running = sum(1 for s in pod.services if s.state == "running")
    asleep = sum(1 for s in pod.services if s.state == "sleeping")
    text = Text(f"pod {pod.pod}: mode {pod.mode}; {running} running, {asleep} asleep")
    if not pod.reachable:
        text.append(f"; unreachable: {pod.why_unreachable}", style="red")
    if pod.changes_pending:
        text.append(f"; {pod.changes_pending} change(s) pending", style="yellow")
    return text
