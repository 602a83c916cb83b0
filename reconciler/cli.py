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
from rich.text import Text

from gpumod import controller, whatif
from gpumod.core.model import Plan
from gpumod.errors import GpumodError, InfeasibleError, SpecError, StalePlanError
from gpumod.logconfig import configure_logging, get_logger
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
ApplyArg = typer.Argument(
    ..., help="spec directory (or one YAML file), or a plan saved by `gpumod plan --out`", show_default=False
)
PodOpt = typer.Option(None, "--pod", "-p", help="only these pods (repeatable)")
OutOpt = typer.Option(Output.text, "--output", "-o", help="text or json")


class LogFormat(str, Enum):
    text = "text"
    json = "json"


_log_format = LogFormat.text


@app.callback()
def _main(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="log more (-v info, -vv debug)"),
    log_format: LogFormat = typer.Option(
        LogFormat.text, "--log-format", envvar="GPUMOD_LOG_FORMAT",
        help="stderr log lines: text, or json (one object per line, step events included)",
    ),
) -> None:
    global _log_format
    _log_format = log_format
    configure_logging(verbose, log_format.value)


def _run(fn: Callable[[], int], *, error_code: int = 2) -> None:
    """Run one command body; map known errors to a red line, a hint and ``error_code``."""
    try:
        code = fn()
    except GpumodError as e:
        _report(e)
        raise typer.Exit(2 if isinstance(e, (SpecError, InfeasibleError, StalePlanError)) else error_code)
    except KeyboardInterrupt:
        if _log_format is LogFormat.json:
            get_logger("gpumod.cli").warning("cli.interrupted")
        else:
            err.print("interrupted")
        raise typer.Exit(130)
    raise typer.Exit(code)


def _report(e: GpumodError) -> None:
    """A known error: its details, one red line and a hint — or, with ``--log-format json``, one
    JSON line with the same fields (so that every stderr line parses)."""
    if isinstance(e, SpecError):
        details = [str(p) for p in e.problems]
    elif isinstance(e, InfeasibleError):
        details = [i.describe() for i in e.infeasible]
    elif isinstance(e, StalePlanError):
        details = [f"  {c}" for c in e.changes]
    else:
        details = []
    if _log_format is LogFormat.json:
        get_logger("gpumod.cli").error(
            "cli.error", error=e.message, hint=e.hint, details=[d.strip() for d in details]
        )
        return
    for line in details:
        err.print(line, markup=False)
    for line in error_lines(e.message, e.hint):
        err.print(line)


@app.command()
def validate(directory: Path = DirArg, output: Output = OutOpt) -> None:
    """Check the specs: every problem as path:line: message. Exit 0 valid, 2 invalid."""

    def body() -> int:
        try:
            specs = controller.validate(directory)
        except SpecError as e:
            if output is Output.text:
                raise
            problems = [{"path": p.path, "line": p.line, "message": p.message} for p in e.problems]
            out.print_json(json.dumps({"valid": False, "problems": problems}))
            return 2
        if output is Output.json:
            names = {
                "pods": [p.name for p in specs.pods],
                "services": [s.name for s in specs.services],
                "modes": [m.name for m in specs.modes],
            }
            out.print_json(json.dumps({"valid": True, **names}))
            return 0
        out.print(
            f"valid: {len(specs.pods)} pod(s), {len(specs.services)} service(s), {len(specs.modes)} mode(s)"
        )
        return 0

    _run(body)


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
            _error_line(f"pod {o.name} cannot be planned: {why}", pod=o.name)
        if unreachable:
            if save_to is not None:
                _error_line("the plan was not saved (a pod could not be observed)")
            return 2
        if save_to is not None:
            _save_plan(save_to, directory, pod, snap, note=output is Output.text)
        return 1 if p.changes else 0

    _run(body)


def _error_line(text: str, **fields: str) -> None:
    """One error line on stderr that is not an exception: red text, or a JSON log line."""
    if _log_format is LogFormat.json:
        get_logger("gpumod.cli").error("cli.error", error=text, **fields)
    else:
        err.print(Text.assemble(("error:", "red"), " ", text))


def _save_plan(path: Path, directory: Path, pods: Optional[List[str]], snap: controller.Snapshot, note: bool) -> None:
    from gpumod.saved_plan import save_plan

    try:
        save_plan(
            path, spec_dir=directory, pod_names=pods, pod_specs=snap.pods,
            desired=snap.desired, observed=snap.observed, plan=snap.plan,
        )
    except OSError as e:
        raise GpumodError(f"cannot write the plan to {path}: {e.strerror or e}", hint="pick a writable path") from None
    get_logger("gpumod.cli").info("plan.saved", path=str(path), fingerprint=snap.plan.fingerprint)
    if note:
        out.print(f"Saved the plan to {path}; `gpumod apply {path}` runs exactly this plan.", markup=False)


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
        quiet = output is Output.json
        reporter = ConsoleReporter(out, quiet=quiet)
        saved = _saved_plan(directory, pod)
        if saved is not None:
            result = asyncio.run(controller.apply_saved(saved, plan_file=str(directory), reporter=reporter))
        else:
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


def _saved_plan(path: Path, pods: Optional[List[str]]):
    """The saved plan ``path`` names (``gpumod apply plan.json``), or None for a spec directory."""
    from gpumod.saved_plan import is_saved_plan, load_saved_plan

    if not is_saved_plan(path):
        return None
    if pods:
        raise GpumodError(
            f"{path} is a saved plan: it carries its own pod selection, --pod does not apply",
            hint="drop --pod, or make a plan for those pods with `gpumod plan DIR --pod P --out FILE`",
        )
    return load_saved_plan(path)


@app.command()
def down(
    directory: Path = DirArg,
    pod: Optional[List[str]] = PodOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    output: Output = OutOpt,
) -> None:
    """Stop every managed service on the selected pods. Exit 0 all stopped, 1 some could not be."""

    def body() -> int:
        quiet = output is Output.json
        reporter = ConsoleReporter(out, quiet=quiet)
        result = asyncio.run(
            controller.apply(directory, pod, confirm=_confirm(yes or quiet), reporter=reporter, empty=True)
        )
        if quiet:
            out.print_json(json.dumps({**apply_json(result, reporter), "down": True}))
            return result.exit_code
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
    metrics_port: Optional[int] = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="serve Prometheus metrics on 127.0.0.1:PORT/metrics",
        show_default=False,
    ),
) -> None:
    """Apply on every change of the spec directory and every INTERVAL seconds, until Ctrl+C."""
    from gpumod.watch import watch_loop

    def body() -> int:
        asyncio.run(watch_loop(directory, pod, interval=interval, console=out, metrics_port=metrics_port))
        return 0

    _run(body)


@app.command()
def logs(
    directory: Path = DirArg,
    service: str = typer.Argument(..., help="the service"),
    pod: Optional[List[str]] = PodOpt,
    lines: int = typer.Option(50, "--lines", "-n", help="how many lines"),
    output: Output = OutOpt,
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
        if output is Output.json:
            pods = {name: {"lines": text.splitlines()} for name, text in sorted(found.items())}
            out.print_json(json.dumps({"service": service, "pods": pods}))
            return 0
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


# Commands that live in their own modules: prompt, ssh, shell (gpumod.chat) and endpoints, tunnel
# (gpumod.reach).
from gpumod.chat.cli import register as _register_chat  # noqa: E402
from gpumod.reach_cli import endpoints as _endpoints  # noqa: E402
from gpumod.reach_cli import tunnel as _tunnel  # noqa: E402

_register_chat(app)
app.command("endpoints")(_endpoints)
app.command("tunnel")(_tunnel)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
