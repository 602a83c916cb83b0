"""A worker's message that arrives once the screen is torn down (the app quitting while an
observation or a pass is still in flight) is dropped, not a NoMatches crash of the app: seen in
CI as a failing test_tui_sim_pod run when the timer's observation landed during teardown."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from gpumod.errors import GpumodError
from gpumod.ops.events import Note
from gpumod.tui.app import GpumodTui, Observed, OpEvent, Output


def test_late_messages_after_teardown_are_dropped(tmp_path: Path) -> None:
    app = GpumodTui(tmp_path, live=False)  # never mounted: no screen, as after teardown
    app.on_observed(Observed(None, GpumodError("pod box: unreachable")))
    app.on_op_event(OpEvent(Note("a late note")))
    app.on_output(Output([Text("a late line")]))
    assert app.result is None
