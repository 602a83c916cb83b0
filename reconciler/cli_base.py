"""The command line's edge without typer: the consoles, the log format, the error edge (a known
error is a red line, a hint and an exit code) and the body of ``gpumod plan``.

Why a module of its own: ``gpumod plan``, the verb typed all day, runs without typer
(``gpumod.entry``): typer 0.29 coerces every parameter through a pydantic ``TypeAdapter``, which
costs about a sixth of a no-op plan's start-up (issue 7, P7; benchmarks/plan_startup.py). The
typer app (``gpumod.cli``) uses the same pieces, so both paths print and exit alike.
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.text import Text

from gpumod.errors import GpumodError, InfeasibleError, ProvisionRefusedError, SpecError, StalePlanError, UsageError
from gpumod.logconfig import configure_logging, get_logger
from gpumod.views import error_lines, print_plan

__all__ = ["LogFormat", "Output", "configure", "err", "error_line", "out", "plan_body", "report", "run_body"]

# Verbatim (style.md §17): no markup, no highlighting, no emoji codes (`:fire:` in a service's log
# stays text; not reading them also spares every command rich's emoji table).
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


class Output(str, Enum):
    text = "text"
    json = "json"


class LogFormat(str, Enum):
    text = "text"
    json = "json"


_log_format = LogFormat.text


def configure(verbose: int, log_format: LogFormat) -> None:
    """The global options: how much to log, and whether stderr lines are text or JSON."""
    global _log_format
    _log_format = log_format
    configure_logging(verbose, log_format.value)


def run_body(fn: Callable[[], int], *, error_code: int = 2, json_output: bool = False) -> int:
    """Run one command body; its exit code, or a known error's red line, hint and ``error_code``
    (2 when the error means nothing was touched). With ``-o json`` stdout still gets one JSON
    document: the error's (``GpumodError.to_json``)."""
    try:
        return fn()
    except GpumodError as e:
        report(e)
        if json_output:
            out.print_json(json.dumps(e.to_json()))
        refused = (SpecError, InfeasibleError, StalePlanError, ProvisionRefusedError, UsageError)
        return 2 if isinstance(e, refused) else error_code
    except KeyboardInterrupt:
        if _log_format is LogFormat.json:
            get_logger("gpumod.cli").warning("cli.interrupted")
        else:
            err.print("interrupted")
        if json_output:
            out.print_json(json.dumps(GpumodError("interrupted").to_json()))
        return 130


def report(e: GpumodError) -> None:
    """A known error: its details, one red line and a hint — or, with ``--log-format json``, one
    JSON line with the same fields (so that every stderr line parses)."""
    details = e.details()  # the same lines the MCP server sends before the message
    if _log_format is LogFormat.json:
        get_logger("gpumod.cli").error(
            "cli.error", error=e.message, hint=e.hint, details=[d.strip() for d in details]
        )
        return
    for line in details:
        err.print(line, markup=False)
    for text in error_lines(e.message, e.hint):
        err.print(text)


def error_line(text: str, **fields: str) -> None:
    """One error line on stderr that is not an exception: red text, or a JSON log line."""
    if _log_format is LogFormat.json:
        get_logger("gpumod.cli").error("cli.error", error=text, **fields)
    else:
        err.print(Text.assemble(("error:", "red"), " ", text))


def plan_body(directory: Path, pod: Sequence[str] | None, output: Output, save_to: Path | None) -> int:
    """``gpumod plan``: exit 0 nothing to do, 1 changes pending, 2 error or infeasible."""
    from gpumod.ops import plan as ops_plan

    result = asyncio.run(ops_plan.plan(directory, pod))
    p = result.plan
    if output is Output.json:
        out.print_json(json.dumps(result.to_json()))
    else:
        print_plan(out, p)
    if not p.fits:
        if output is Output.text:
            raise InfeasibleError([x.infeasible for x in p.pods if x.infeasible])
        return 2
    unreachable = result.unreachable
    for o in unreachable:
        error_line(f"pod {o.name} cannot be planned: {o.why_unreachable}", pod=o.name)
    if unreachable:
        if save_to is not None:
            error_line("the plan was not saved (a pod could not be observed)")
        return 2
    if save_to is not None:
        ops_plan.save(result, save_to, directory, pod)
        if output is Output.text:
            out.print(f"Saved the plan to {save_to}; `gpumod apply {save_to}` runs exactly this plan.", markup=False)
    return 1 if p.changes else 0
