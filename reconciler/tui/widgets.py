"""The TUI's widgets: VRAM bars, the service table, the output panel and the command line.

Why a module of its own: each widget only places lines that ``gpumod.tui.render`` drew from a
typed result, so the app (``gpumod.tui.app``) deals in results and commands, not in cells.
Nothing shown here is parsed as markup: every line arrives as a rich ``Text``.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable, Input, RichLog, Static

from gpumod.tui.render import COLUMNS

__all__ = ["CommandLine", "OutputLog", "PodTitle", "ServiceTable", "VramBars"]

PLACEHOLDER = "/status  /switch MODE  /simulate [--mode M] [--add S]  /plan  /apply  /logs S  /quit  ? help"


class PodTitle(Static):
    """pod · mode · host, and whether it is reachable or has changes pending."""

    DEFAULT_CSS = "PodTitle { height: 1; padding: 0 1; }"


class VramBars(Static):
    """One bar per GPU, a segment per service (awake █, asleep ▒), memory gpumod does not manage
    and the reserve (╳) in grey, free space ░; a legend under each bar."""

    DEFAULT_CSS = "VramBars { height: auto; padding: 0 1; border: round $primary-darken-2; }"

    shown: list[Text] = []

    def show(self, lines: list[Text]) -> None:
        self.shown = lines
        self.update(Text("\n").join(lines) if lines else Text("observing…", style="dim"))


class ServiceTable(DataTable):
    """service, state, target, GPU, VRAM used/budget, port, since, why not running."""

    DEFAULT_CSS = "ServiceTable { height: auto; max-height: 14; }"

    def on_mount(self) -> None:
        self.cursor_type = "none"  # a view, not a picker
        self.zebra_stripes = True
        self.add_columns(*COLUMNS)

    def show(self, rows: list[tuple[Text, ...]]) -> None:
        self.clear(columns=True)  # columns sized to these rows (a long note gone shrinks its column back)
        self.add_columns(*COLUMNS)
        for row in rows:
            self.add_row(*row, key=row[0].plain)


class OutputLog(RichLog):
    """What commands answer and what a running pass reports, step by step (verbatim text)."""

    DEFAULT_CSS = "OutputLog { height: 1fr; min-height: 6; border: round $primary-darken-2; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(markup=False, highlight=False, wrap=True, **kwargs)  # type: ignore[arg-type]
        self.written: list[Text] = []  # every line, as written (what tests and the screenshot read)

    def say(self, lines: list[Text]) -> None:
        for line in lines:
            self.written.append(line)
            self.write(line)

    def write(self, content: object, width: int | None = None, *args: object, **kwargs: object) -> "OutputLog":
        """Wrap at the panel's width (RichLog measures against the console's, 80 when headless);
        a line written before the panel has a size is written again through here once it has."""
        if width is None and self._size_known:
            width = self.scrollable_content_region.width or None
        super().write(content, width, *args, **kwargs)  # type: ignore[arg-type]
        return self


class CommandLine(Input):
    """Where commands are typed: /status, /switch MODE, /simulate …; ? for help."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(placeholder=PLACEHOLDER, **kwargs)  # type: ignore[arg-type]
