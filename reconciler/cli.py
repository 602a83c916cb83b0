"""The command line: typer commands over the operations layer, with the exit codes of design.md.

Known errors (``GpumodError``) print one red line and a hint; anything else is a bug and prints
a traceback. Output for scripts comes with ``-o json``. The consoles never read markup: what a
pod says is printed verbatim, and styled lines are built as ``Text`` (``gpumod.views.styled``).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console

from gpumod import controller, whatif
from gpumod.core.model import Plan
from gpumod.errors import GpumodError, InfeasibleError, SpecError
from gpumod.logconfig import configure_logging
from gpumod.views import (
    ConsoleReporter,
    apply_json,
    error_lines,
    print_plan,
    render_recap,
    render_simulation,
    simulation_json,
    status_json,
    status_table,
)

app = typer.Typer(
    name="gpumod",
    help="GitOps for GPU model services: make pods match the YAML specs in a directory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


class Output(str, Enum):
    text = "text"
    json = "json"


DirArg = typer.Argument(..., help="spec directory (or one YAML file)", show_default=False)
PodOpt = typer.Option(None, "--pod", "-p", help="only these pods (repeatable)")
OutOpt = typer.Option(Output.text, "--output", "-o", help="text or json")


@app.callback()
def _main(verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="log more (-v info, -vv debug)")) -> None:
    configure_logging(verbose)


def _run(fn: Callable[[], int], *, error_code: int = 2) -> None:
    """Run one command body; map known errors to a red line, a hint and ``error_code``."""
    try:
        code = fn()
    except SpecError as e:
        for problem in e.problems:
            err.print(str(problem))
        _print_error(e)
        raise typer.Exit(2)
    except InfeasibleError as e:
        for inf in e.infeasible:
            err.print(inf.describe())
        _print_error(e)
        raise typer.Exit(2)
    except GpumodError as e:
        _print_error(e)
        raise typer.Exit(error_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130)
    raise typer.Exit(code)


def _print_error(e: GpumodError) -> None:
    for line in error_lines(e.message, e.hint):
        err.print(line)


@app.command()
def validate(directory: Path = DirArg) -> None:
    """Check the specs: every problem as path:line: message. Exit 0 valid, 2 invalid."""

    def body() -> int:
        specs = controller.validate(directory)
        out.print(
            f"valid: {len(specs.pods)} pod(s), {len(specs.services)} service(s), {len(specs.modes)} mode(s)"
        )
        return 0

    _run(body)


@app.command()
def plan(directory: Path = DirArg, pod: Optional[List[str]] = PodOpt, output: Output = OutOpt) -> None:
    """Show what apply would do. Exit 0 nothing to do, 1 changes pending, 2 error or infeasible."""

    def body() -> int:
        snap = asyncio.run(controller.snapshot(directory, pod))
        p = snap.plan
        if output is Output.json:
            out.print_json(json.dumps(p.to_json()))
        else:
            print_plan(out, p)
        if not p.fits:
            if output is Output.text:
                raise InfeasibleError([x.infeasible for x in p.pods if x.infeasible])
            return 2
        unreachable = [o for o in snap.observed if not o.reachable]
        for o in unreachable:
            why = o.error.removeprefix(f"pod {o.name}: ")
            err.print(error_lines(f"pod {o.name} cannot be planned: {why}")[0])
        if unreachable:
            return 2
        return 1 if p.changes else 0

    _run(body)


def _confirm(yes: bool) -> Callable[[Plan], bool]:
    def ask(p: Plan) -> bool:
        if yes or not sys.stdin.isatty():
            return True
        return typer.confirm("Apply these changes?", default=False)

    return ask


@app.command()
def apply(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    output: Output = OutOpt,
) -> None:
    """Make the pods match the specs. Exit 0 converged, 1 some steps failed, 2 invalid or infeasible."""

    def body() -> int:
        quiet = output is Output.json
        reporter = ConsoleReporter(out, quiet=quiet)
        result = asyncio.run(
            controller.apply(directory, pod, confirm=_confirm(yes or quiet), reporter=reporter)
        )
        if quiet:
            out.print_json(json.dumps(apply_json(result, reporter)))
        else:
            for line in render_recap(result):
                out.print(line)
        return result.exit_code

    _run(body)


@app.command()
def down(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Stop every managed service on the selected pods. Exit 0 all stopped, 1 some could not be."""

    def body() -> int:
        reporter = ConsoleReporter(out)
        result = asyncio.run(
            controller.apply(directory, pod, confirm=_confirm(yes), reporter=reporter, empty=True)
        )
        for line in render_recap(result):
            out.print(line)
        return result.exit_code

    _run(body, error_code=1)


@app.command()
def status(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    visual: bool = typer.Option(False, "--visual", help="draw VRAM bars"),
    output: Output = OutOpt,
) -> None:
    """Show each pod's services: state, GPU, VRAM used/budget, port, since."""

    def body() -> int:
        snap = asyncio.run(controller.snapshot(directory, pod))
        if output is Output.json:
            out.print_json(json.dumps(status_json(snap)))
        else:
            for renderable in status_table(snap, visual=visual):
                out.print(renderable)
        return 0

    _run(body)


@app.command()
def simulate(
    directory: Path = DirArg,
    pod: str = typer.Option(..., "--pod", "-p", help="the pod to simulate"),
    mode: Optional[str] = typer.Option(None, "--mode", "-m", help="a mode other than the pod's"),
    add: Optional[List[str]] = typer.Option(None, "--add", "-a", help="also run this service (repeatable)"),
    services: Optional[List[str]] = typer.Option(
        None, "--services", "-s", help="exactly these services instead of a mode (a,b,c; repeatable)"
    ),
    output: Output = OutOpt,
) -> None:
    """Would this mode (or these services, plus these) fit? Exit 0 fits, 1 does not fit, 2 error. Touches nothing."""

    def body() -> int:
        only = [n.strip() for item in services for n in item.split(",") if n.strip()] if services else None
        sim = asyncio.run(whatif.simulate(directory, pod, mode=mode, add=add or (), services=only))
        if output is Output.json:
            out.print_json(json.dumps(simulation_json(sim)))
        else:
            for line in render_simulation(sim):
                out.print(line)
        return 0 if sim.fits else 1

    _run(body)


@app.command()
def watch(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    interval: float = typer.Option(60.0, "--interval", help="re-observe every SECONDS even without changes"),
) -> None:
    """Apply on every change of the spec directory and every INTERVAL seconds, until Ctrl+C."""
    from gpumod.watch import watch_loop

    def body() -> int:
        asyncio.run(watch_loop(directory, pod, interval=interval, console=out))
        return 0

    _run(body)


@app.command()
def logs(
    directory: Path = DirArg,
    service: str = typer.Argument(..., help="the service"),
    pod: Optional[List[str]] = PodOpt,
    lines: int = typer.Option(50, "--lines", "-n", help="how many lines"),
    follow: bool = typer.Option(False, "--follow", "-f", help="then print new lines as they come, until Ctrl+C"),
) -> None:
    """The last lines of a service's log (its stdout and stderr on the pod), also once it stopped."""

    def body() -> int:
        if follow:
            def emit(name: str, line: str) -> None:
                out.print(f"{name}: {line}" if name else line, highlight=False)

            try:
                asyncio.run(controller.logs(directory, service, pod, lines, follow=emit))
            except KeyboardInterrupt:
                pass  # Ctrl+C is how a follow ends
            return 0
        found = asyncio.run(controller.logs(directory, service, pod, lines))
        for name, text in sorted(found.items()):
            if len(found) > 1:
                out.print(f"==> pod {name}, service {service} <==", style="bold")
            out.print(text.rstrip("\n"), highlight=False)
        return 0

    _run(body)


@app.command()
def unlock(
    pod: str = typer.Argument(..., help="the pod whose lock to break"),
    specs: Path = typer.Option(Path("specs"), "--specs", "-d", help="spec directory that defines the pod"),
    yes: bool = typer.Option(False, "--yes", "-y", help="break a lock held right now without asking"),
) -> None:
    """Break a pod's lock left by a gpumod run that is gone. Exit 0 unlocked, 1 not broken, 2 error."""

    def who(owner: dict) -> str:
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
        if not specs.exists():
            raise GpumodError(
                f"no spec directory {specs} here: unlock reads how to reach pod {pod} from the specs",
                hint="pass the spec directory that defines the pod: " + shlex.join(["gpumod", "unlock", pod, "--specs", "DIR"]),
            )
        found = asyncio.run(controller.unlock(specs, pod, confirm=ask))
        owner = found.get("owner") or {}
        if found.get("refused"):
            for line in error_lines(
                f"pod {pod} is locked right now by {who(owner)}; the lock was not broken",
                hint="if that run is gone, break it anyway: "
                + shlex.join(["gpumod", "unlock", pod, "--specs", str(specs), "--yes"]),
            ):
                err.print(line)
            return 1
        if found.get("was_locked"):
            out.print(f"pod {pod}: broke the lock held by {who(owner)}" + (" (holder killed)" if found.get("killed") else ""))
        else:
            out.print(f"pod {pod}: was not locked" + (f" (stale owner record of {who(owner)} removed)" if owner else ""))
        return 0

    _run(body)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec files (for yaml-language-server)."""
    from gpumod.spec import json_schema

    out.print_json(json.dumps(json_schema()))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
