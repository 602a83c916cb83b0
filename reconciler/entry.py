"""The ``gpumod`` console script: ``gpumod plan`` in its common forms runs without typer, every
other command line goes to the typer app (``gpumod.cli``). Ctrl+C while Python is still loading
the CLI (a second on a busy machine) ends with ``interrupted`` and exit 130, as during a command.

Why: importing typer and coercing the parameters through it (typer 0.29 builds a pydantic
``TypeAdapter`` per parameter) costs about a sixth of a no-op ``gpumod plan`` (issue 7, P7;
benchmarks/plan_startup.py), the command people type all day. ``plan_args`` accepts only the
plain forms — ``[-v|--verbose]... [--log-format text|json] plan DIR`` with ``-p/--pod NAME``,
``-o/--output text|json`` and ``--out FILE`` — and answers None for anything else (``--help``,
``-vv``, ``--pod=NAME``, an unknown option or value, a value starting with '-', shell completion),
which typer then parses, reports and helps with as before. tests/test_cli_startup.py checks that
both read every accepted form alike.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PlanArgs", "main", "plan_args"]

_FORMATS = ("text", "json")


@dataclass
class PlanArgs:
    directory: Path
    pod: list[str] = field(default_factory=list)
    output: str = "text"
    save_to: Path | None = None
    verbose: int = 0
    log_format: str = "text"


def plan_args(argv: Sequence[str], env: Mapping[str, str]) -> PlanArgs | None:
    """The arguments of a plain ``gpumod plan`` command line; None: let typer parse it."""
    if "_GPUMOD_COMPLETE" in env:  # shell completion
        return None
    log_format = env.get("GPUMOD_LOG_FORMAT", "text")
    if log_format not in _FORMATS:
        return None
    args = list(argv)
    verbose = 0
    while args and args[0] != "plan":
        opt = args.pop(0)
        if opt in ("-v", "--verbose"):
            verbose += 1
        elif opt == "--log-format" and args and args[0] in _FORMATS:
            log_format = args.pop(0)
        else:
            return None
    if not args:
        return None
    args.pop(0)
    directory: str | None = None
    found = PlanArgs(Path(), verbose=verbose, log_format=log_format)
    while args:
        arg = args.pop(0)
        if not arg.startswith("-") and arg:
            if directory is not None:
                return None
            directory = arg
            continue
        if arg not in ("-p", "--pod", "-o", "--output", "--out") or not args:
            return None
        value = args.pop(0)
        if not value or value.startswith("-"):
            return None
        if arg in ("-p", "--pod"):
            found.pod.append(value)
        elif arg == "--out":
            found.save_to = Path(value)
        elif value in _FORMATS:
            found.output = value
        else:
            return None
    if directory is None:
        return None
    found.directory = Path(directory)
    return found


def main() -> None:
    args = plan_args(sys.argv[1:], os.environ)
    try:  # Ctrl+C while Python still loads the CLI ends as one during a command, not a traceback
        if args is None:
            from gpumod.cli import main as typer_main
        else:
            from gpumod.cli_base import LogFormat, Output, configure, plan_body, run_body
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    if args is None:
        typer_main()
        return
    configure(args.verbose, LogFormat(args.log_format))
    output = Output(args.output)
    try:
        code = run_body(lambda: plan_body(args.directory, args.pod or None, output, args.save_to),
                        json_output=output is Output.json)
    except BrokenPipeError:  # `gpumod plan | head`: exit 1 quietly, as click does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)


if __name__ == "__main__":  # `python -m gpumod.entry`: as the console script runs
    main()
