"""The faces of ``gpumod.reach``: the `gpumod endpoints` and `gpumod tunnel` commands.

Registered in ``gpumod.cli`` (``app.command(...)``); they print what ``gpumod.reach`` returns and
use the CLI's error handling (``gpumod.cli._run``), imported when a command runs.
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from gpumod import reach


class Output(str, Enum):
    text = "text"
    json = "json"


def _key_note(ep: reach.Endpoint) -> str:
    if not ep.api_key:
        return "no key"
    kind, _, where = ep.api_key.partition(":")
    return f"key in ${where}" if kind == "env" else f"key in file {where}"


def endpoints(
    directory: Path = typer.Argument(..., help="spec directory (or one YAML file)", show_default=False),
    pod: Optional[List[str]] = typer.Option(None, "--pod", "-p", help="only these pods (repeatable)"),
    output: Output = typer.Option(Output.text, "--output", "-o", help="text or json"),
) -> None:
    """Where each service is reached: its URL, the model id to use, and whether it needs an API key."""
    from gpumod import cli

    def body() -> int:
        found = asyncio.run(reach.endpoints(directory, pod))
        if output is Output.json:
            cli.out.print_json(json.dumps({"endpoints": [ep.as_json() for ep in found]}))
            return 0
        if not found:
            cli.out.print("no services in the specs for the selected pods")
        for ep in found:
            url = ep.url or "via gpumod tunnel"
            cli.out.print(
                f"{ep.pod}/{ep.service}  {url}  model {ep.model or '-'}  {_key_note(ep)}  ({ep.status})",
                markup=False,
            )
        return 0

    cli._run(body, json_output=output is Output.json)


def tunnel(
    directory: Path = typer.Argument(..., help="spec directory (or one YAML file)", show_default=False),
    pod: Optional[List[str]] = typer.Option(None, "--pod", "-p", help="only these pods (repeatable)"),
) -> None:
    """Forward the running services of SSH pods to 127.0.0.1 here, over the pod's SSH connection,
    and print an OPENAI_BASE_URL line per service; runs until Ctrl+C."""
    from gpumod import cli

    def ready(forwards: list[reach.Forward], skipped: list[reach.Endpoint]) -> None:
        for ep in skipped:
            cli.err.print(f"service {ep.service} on pod {ep.pod} is {ep.status}: not forwarded", markup=False)
        for f in forwards:
            ep = f.endpoint
            key = f", {_key_note(ep)}" if ep.api_key else ""
            cli.out.print(
                f"export OPENAI_BASE_URL={f.base_url}  # service {ep.service} (model {ep.model or '-'}) "
                f"on pod {ep.pod}{key}",
                markup=False,
            )
        if any(f.forwarded for f in forwards):
            cli.err.print("forwarding; Ctrl+C to stop", markup=False)
        elif not forwards:
            cli.err.print("no running service to reach", markup=False)
        cli.out.file.flush()

    def body() -> int:
        try:
            asyncio.run(reach.tunnel(directory, pod, ready))
        except KeyboardInterrupt:
            pass  # Ctrl+C is how a tunnel ends
        return 0

    cli._run(body)
