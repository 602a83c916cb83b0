"""The command line: a thin face over ``gpumod.ops`` (parse → call → render), with the exit codes
of design.md. Text comes from ``gpumod.views``; JSON is each result's ``to_json()``, the same
shape every face returns.

Known errors (``GpumodError``) print one red line and a hint; anything else is a bug and prints
a traceback. Output for scripts comes with ``-o json``. The consoles never read markup: what a
pod says is printed verbatim, and styled lines are built as ``Text`` (``gpumod.views.styled``).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional

import typer

from gpumod.cli_base import LogFormat, Output, configure, err, out, plan_body, run_body
from gpumod.core.model import Plan
from gpumod.errors import GpumodError
from gpumod.views import (
    ConsoleReporter,
    error_lines,
    render_recap,
    render_simulation,
    status_table,
)

if TYPE_CHECKING:
    from gpumod.ops.apply import ApplyResult

# Each verb imports its ``gpumod.ops`` module when it runs: `plan` does not pay for the executor,
# logs or unlock (start-up time, benchmarks/plan_startup.py). The consoles, the error edge and
# `plan`'s body live in gpumod.cli_base, which `gpumod plan` uses without typer (gpumod.entry).

app = typer.Typer(
    name="gpumod",
    help="GitOps for GPU model services: make pods match the YAML specs in a directory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


DirArg = typer.Argument(..., help="spec directory (or one YAML file)", show_default=False)
ApplyArg = typer.Argument(
    ..., help="spec directory (or one YAML file), or a plan saved by `gpumod plan --out`", show_default=False
)
PodOpt = typer.Option(None, "--pod", "-p", help="only these pods (repeatable)")
OutOpt = typer.Option(Output.text, "--output", "-o", help="text or json")


def _print_version(wanted: bool) -> None:
    if wanted:
        from gpumod import __version__

        out.print(f"gpumod {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="log more (-v info, -vv debug)"),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print gpumod's version and exit"
    ),
    log_format: LogFormat = typer.Option(
        LogFormat.text, "--log-format", envvar="GPUMOD_LOG_FORMAT",
        help="stderr log lines: text, or json (one object per line, step events included)",
    ),
) -> None:
    configure(verbose, log_format)


def _run(fn: Callable[[], int], *, error_code: int = 2, json_output: bool = False) -> None:
    """Run one command body; map known errors to a red line, a hint and ``error_code`` (with
    ``json_output``, also the error as one JSON document on stdout)."""
    raise typer.Exit(run_body(fn, error_code=error_code, json_output=json_output))


@app.command()
def validate(directory: Path = DirArg, output: Output = OutOpt) -> None:
    """Check the specs: every problem as path:line: message. Exit 0 valid, 2 invalid."""

    def body() -> int:
        from gpumod.ops import validate as ops_validate

        result = ops_validate.validate(directory)
        if output is Output.json:
            out.print_json(json.dumps(result.to_json()))
            return 0 if result.valid else 2
        if result.error is not None:
            raise result.error
        out.print(f"valid: {len(result.pods)} pod(s), {len(result.services)} service(s), {len(result.modes)} mode(s)")
        return 0

    _run(body, json_output=output is Output.json)


@app.command()
def plan(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    output: Output = OutOpt,
    save_to: Optional[Path] = typer.Option(
        None, "--out", help="also save the plan to FILE; `gpumod apply FILE` runs exactly it", show_default=False
    ),
) -> None:
    """Show what apply would do. Exit 0 nothing to do, 1 changes pending, 2 error or infeasible."""
    _run(lambda: plan_body(directory, pod, output, save_to), json_output=output is Output.json)


def _confirm(yes: bool) -> Callable[[Plan], bool]:
    def ask(p: Plan) -> bool:
        if yes or not sys.stdin.isatty():
            return True
        return typer.confirm("Apply these changes?", default=False)

    return ask


@app.command()
def apply(
    directory: Path = ApplyArg,
    pod: Optional[List[str]] = PodOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    output: Output = OutOpt,
) -> None:
    """Make the pods match the specs (or run a saved plan). Exit 0 converged, 1 some steps failed,
    2 invalid, infeasible or a stale saved plan."""

    def body() -> int:
        from gpumod.ops import apply as ops_apply

        quiet = output is Output.json
        reporter = ConsoleReporter(out, quiet=quiet, json_events=sys.stderr if quiet else None)
        saved = ops_apply.saved_plan_at(directory, pod)
        if saved is not None:
            result = asyncio.run(ops_apply.apply_saved(saved, plan_file=str(directory), reporter=reporter))
        else:
            result = asyncio.run(ops_apply.apply(directory, pod, confirm=_confirm(yes or quiet), reporter=reporter))
        _print_result(result, quiet)
        return result.exit_code

    _run(body, json_output=output is Output.json)


def _print_result(result: ApplyResult, as_json: bool) -> None:
    """An apply run's answer: its JSON, or the recap."""
    if as_json:
        out.print_json(json.dumps(result.to_json()))
    else:
        for line in render_recap(result):
            out.print(line)


@app.command()
def down(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    output: Output = OutOpt,
) -> None:
    """Stop every managed service on the selected pods. Exit 0 all stopped, 1 some could not be."""

    def body() -> int:
        from gpumod.ops import apply as ops_apply

        quiet = output is Output.json
        reporter = ConsoleReporter(out, quiet=quiet)
        result = asyncio.run(ops_apply.down(directory, pod, confirm=_confirm(yes or quiet), reporter=reporter))
        _print_result(result, quiet)
        return result.exit_code

    _run(body, error_code=1, json_output=output is Output.json)


@app.command()
def status(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    visual: bool = typer.Option(False, "--visual", help="draw VRAM bars"),
    output: Output = OutOpt,
) -> None:
    """Show each pod's services: state, GPU, VRAM used/budget, port, since. Exit 0, or 2 when a
    pod could not be observed (as `plan`: a script sees it) or on an error."""

    def body() -> int:
        from gpumod.ops import status as ops_status

        result = asyncio.run(ops_status.status(directory, pod))
        if output is Output.json:
            out.print_json(json.dumps(result.to_json()))
        else:
            for renderable in status_table(result, visual=visual):
                out.print(renderable)
        return 2 if any(not p.reachable for p in result.pods) else 0

    _run(body, json_output=output is Output.json)


@app.command()
def simulate(
    directory: Path = DirArg,
    pod: Optional[str] = typer.Option(
        None, "--pod", "-p", help="the pod to simulate (may be left out when the specs define one)"
    ),
    mode: Optional[str] = typer.Option(None, "--mode", "-m", help="a mode other than the pod's"),
    add: Optional[List[str]] = typer.Option(None, "--add", "-a", help="also run this service (repeatable)"),
    services: Optional[List[str]] = typer.Option(
        None, "--services", "-s", help="exactly these services instead of a mode (a,b,c; repeatable)"
    ),
    output: Output = OutOpt,
) -> None:
    """Would this mode (or these services, plus these) fit? Exit 0 fits, 1 does not fit, 2 error. Touches nothing."""

    def body() -> int:
        from gpumod.ops import simulate as ops_simulate

        only = [n.strip() for item in services for n in item.split(",") if n.strip()] if services else None
        if only == []:
            raise GpumodError("--services names no service", hint="give them comma-separated: --services a,b,c")
        sim = asyncio.run(ops_simulate.simulate(directory, pod, mode=mode, add=add or (), services=only))
        if output is Output.json:
            out.print_json(json.dumps(sim.to_json()))
        else:
            for line in render_simulation(sim):
                out.print(line)
        return 0 if sim.fits else 1

    _run(body, json_output=output is Output.json)


@app.command()
def watch(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    interval: float = typer.Option(
        60.0, "--interval", min=0.1, help="re-observe every SECONDS even without changes (at least 0.1)"
    ),
    metrics_port: Optional[int] = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="serve Prometheus metrics on 127.0.0.1:PORT/metrics",
        show_default=False,
    ),
) -> None:
    """Apply on every change of the spec directory and every INTERVAL seconds, until Ctrl+C."""
    from gpumod.ops.watch import watch as watch_loop

    def body() -> int:
        reporter = ConsoleReporter(out, recap=True)
        asyncio.run(watch_loop(directory, pod, reporter=reporter, interval=interval, metrics_port=metrics_port))
        return 0

    _run(body)


@app.command()
def logs(
    directory: Path = DirArg,
    service: str = typer.Argument(..., help="the service"),
    pod: Optional[List[str]] = PodOpt,
    lines: int = typer.Option(50, "--lines", "-n", min=1, help="how many lines"),
    output: Output = OutOpt,
    follow: bool = typer.Option(False, "--follow", "-f", help="then print new lines as they come, until Ctrl+C"),
) -> None:
    """The last lines of a service's log (its stdout and stderr on the pod), also once it stopped."""

    def body() -> int:
        from gpumod.ops import logs as ops_logs

        if follow:
            def emit(name: str, line: str) -> None:
                out.print(f"{name}: {line}" if name else line, highlight=False)

            try:
                asyncio.run(ops_logs.logs(directory, service, pod, lines, follow=emit))
            except KeyboardInterrupt:
                pass  # Ctrl+C is how a follow ends
            return 0
        result = asyncio.run(ops_logs.logs(directory, service, pod, lines))
        found = result.pods
        if output is Output.json:
            out.print_json(json.dumps(result.to_json()))
            return 0
        for name, text in sorted(found.items()):
            if len(found) > 1:
                out.print(f"==> pod {name}, service {service} <==", style="bold")
            out.print(text.rstrip("\n"), highlight=False)
        return 0

    _run(body, json_output=output is Output.json)


@app.command()
def unlock(
    pod: str = typer.Argument(..., help="the pod whose lock to break"),
    specs: Path = typer.Option(Path("specs"), "--specs", "-d", help="spec directory that defines the pod"),
    yes: bool = typer.Option(False, "--yes", "-y", help="break a lock held right now without asking"),
) -> None:
    """Break a pod's lock left by a gpumod run that is gone. Exit 0 unlocked, 1 not broken, 2 error."""

    def who(owner) -> str:
        return f"{owner.get('user', '?')}@{owner.get('host', '?')} pid {owner.get('pid', '?')}" if owner else "nobody"

    def ask(owner: dict) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            return False
        command = f" (`{owner['command']}`)" if owner.get("command") else ""
        return typer.confirm(
            f"pod {pod} is locked right now by {who(owner)}{command}; break the lock (kills its holder)?",
            default=False,
        )

    def body() -> int:
        from gpumod.ops import unlock as ops_unlock

        if not specs.exists():
            raise GpumodError(
                f"no spec directory {specs} here: unlock reads how to reach pod {pod} from the specs",
                hint="pass the spec directory that defines the pod: "
                + shlex.join(["gpumod", "unlock", pod, "--specs", "DIR"]),
            )
        found = asyncio.run(ops_unlock.unlock(specs, pod, confirm=ask))
        owner = found.owner
        if found.refused:
            for line in error_lines(
                f"pod {pod} is locked right now by {who(owner)}; the lock was not broken",
                hint="if that run is gone, break it anyway: "
                + shlex.join(["gpumod", "unlock", pod, "--specs", str(specs), "--yes"]),
            ):
                err.print(line)
            return 1
        if found.was_locked:
            out.print(f"pod {pod}: broke the lock held by {who(owner)}" + (" (holder killed)" if found.killed else ""))
        else:
            out.print(
                f"pod {pod}: was not locked" + (f" (stale owner record of {who(owner)} removed)" if owner else "")
            )
        return 0

    _run(body)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec files (for yaml-language-server)."""
    from gpumod.spec import json_schema

    out.print_json(json.dumps(json_schema()))


# Commands that live in their own modules: mode, service, presets, start, stop (gpumod.cli_specs);
# prompt, ssh, shell (gpumod.chat), endpoints, tunnel (gpumod.reach), setup, models
# (gpumod.provision_cli), mcp (gpumod.mcp), tui (gpumod.tui) and the spec-writing verbs
# (gpumod.cli_specs). Each module is registered by
# one function in EXTRA_COMMANDS (add yours there), called only when the command line names none of
# this module's own commands: `gpumod plan` does not import them (benchmarks/plan_startup.py).
def _register_chat(app: typer.Typer) -> None:
    from gpumod.chat.cli import register

    register(app)


def _register_reach(app: typer.Typer) -> None:
    from gpumod.reach_cli import endpoints, tunnel

    app.command("endpoints")(endpoints)
    app.command("tunnel")(tunnel)


def _register_provision(app: typer.Typer) -> None:
    from gpumod.provision_cli import models, setup

    app.command("setup")(setup)
    app.command("models")(models)


def _register_mcp(app: typer.Typer) -> None:
    from gpumod.mcp.cli import register

    register(app)


def _register_tui(app: typer.Typer) -> None:
    from gpumod.tui.command import register

    register(app)


def _register_specs(app: typer.Typer) -> None:
    import gpumod.cli_specs  # noqa: F401  (registers its commands on import)


EXTRA_COMMANDS: list[Callable[[typer.Typer], None]] = [
    _register_chat, _register_reach, _register_provision, _register_mcp, _register_tui, _register_specs,
]
_OWN_COMMANDS = frozenset(c.name or c.callback.__name__ for c in app.registered_commands if c.callback)
_registered = False


def register_all() -> typer.Typer:
    """Every command on ``app`` (once): for help, completion and the commands of other modules."""
    global _registered
    if not _registered:
        _registered = True
        for register in EXTRA_COMMANDS:
            register(app)
    return app


def command_named(argv: List[str]) -> Optional[str]:
    """The command a command line names (its first word after the global options), or None."""
    args = iter(argv)
    for arg in args:
        if arg == "--":
            return next(args, None)
        if arg == "--log-format":
            next(args, None)  # its value
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    if command_named(sys.argv[1:]) not in _OWN_COMMANDS:
        register_all()
    app()


if __name__ == "__main__":  # `python -m gpumod.cli`: run the imported module, where every command registered
    from gpumod.cli import main as _imported_main

    _imported_main()
