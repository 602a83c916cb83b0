"""The faces of ``gpumod.ops.provision``: the `gpumod setup` and `gpumod models` commands.

Registered in ``gpumod.cli`` (``app.command(...)``); they print what the operations return and use
the CLI's error handling and reporter, imported when a command runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer


class Output(str, Enum):
    text = "text"
    json = "json"


DirArg = typer.Argument(..., help="spec directory (or one YAML file)", show_default=False)
PodOpt = typer.Option(None, "--pod", "-p", help="only these pods (repeatable)")
OutOpt = typer.Option(Output.text, "--output", "-o", help="text or json")


def setup(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    output: Output = OutOpt,
) -> None:
    """Run only the set-up steps (uv, venv, vLLM, packages, mount) of pods with setup:.

    Exit 0 set up, 1 a step failed, 2 invalid or refused (driver too old ...)."""
    from gpumod import cli
    from gpumod.ops import provision
    from gpumod.views import ConsoleReporter

    def body() -> int:
        quiet = output is Output.json
        reporter = ConsoleReporter(cli.out, quiet=quiet, json_events=sys.stderr if quiet else None)
        result = asyncio.run(provision.setup(directory, pod, confirm=cli._confirm(yes or quiet), reporter=reporter))
        if quiet:
            cli.out.print_json(json.dumps(result.to_json()))
        else:
            for run in result.runs:
                ok = sum(1 for o in run.outcomes if o.status == "ok")
                cli.out.print(f"  {run.pod}: {ok} of {len(run.outcomes)} set-up step(s) ok", markup=False)
            for problem in result.problems:
                cli.out.print(f"problem: {problem}", markup=False)
            if not result.plans and not result.problems:
                cli.out.print("No changes. Every selected pod is set up.")
        return result.exit_code

    cli._run(body, error_code=1, json_output=output is Output.json)


def models(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    output: Output = OutOpt,
) -> None:
    """List the models in each pod's cache (setup: models_path, or the pod's HF cache) and their sizes."""
    from gpumod import cli
    from gpumod.drivers.provision import human_bytes
    from gpumod.ops import provision

    def body() -> int:
        found = asyncio.run(provision.models(directory, pod))
        if output is Output.json:
            cli.out.print_json(json.dumps({"pods": [p.to_json() for p in found]}))
            return 2 if any(p.error for p in found) else 0
        for p in found:
            if p.error:
                cli.out.print(f"pod {p.pod}: unreachable: {p.error}", markup=False)
                continue
            cli.out.print(f"pod {p.pod}: {p.cache} ({human_bytes(p.free_bytes)} free)", markup=False)
            if not p.models:
                cli.out.print("  no models", markup=False)
            for m in p.models:
                state = "" if m.complete else f"  partial ({human_bytes(m.partial_bytes)} in progress)"
                cli.out.print(f"  {m.repo}  {human_bytes(m.bytes)}{state}", markup=False)
        return 2 if any(p.error for p in found) else 0

    cli._run(body, json_output=output is Output.json)
