"""The console views on hand-made results: what a pod says is printed verbatim (never read as rich
markup), and the status/simulate views show what the typed results hold."""

from __future__ import annotations

from rich.console import Console

from gpumod.core.model import Step
from gpumod.execute import StepOutcome
from gpumod.ops.events import Note, StepFinished
from gpumod.views import ConsoleReporter, error_lines

HOSTILE = "[x] [/path] INFO [api_server.py:1024] [bold]b[/bold] [/]"


def _console() -> Console:
    # markup on, as a caller may hand in any console: the views must not depend on it being off
    return Console(record=True, width=300, color_system=None, markup=True)


def test_step_lines_and_notes_print_pod_text_verbatim() -> None:
    console = _console()
    reporter = ConsoleReporter(console)
    step = Step(pod="box", action="start", service="bad", reason="not running", phase="fill", wave=1)
    reporter.event(StepFinished("box", StepOutcome(step, "failed", f"the process exited\n      {HOSTILE}", 0.3)))
    reporter.event(Note(f"waiting for {HOSTILE}"))
    text = console.export_text()
    assert text.count(HOSTILE) == 2, text
    assert "FAILED" in text


def test_error_lines_keep_brackets() -> None:
    console = _console()
    for line in error_lines(f"pod far: cannot reach nobody@[gpu-box]:22 {HOSTILE}", hint="see [/docs]"):
        console.print(line)
    text = console.export_text()
    assert "error: pod far: cannot reach nobody@[gpu-box]:22 " + HOSTILE in text
    assert "hint: see [/docs]" in text
