"""The ``gpumod tui DIR`` command: checks the specs, then runs the dashboard.

Kept apart from ``gpumod.tui.app`` so that registering the command with the CLI imports no
Textual: the app (and ``textual``) is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "tui"]


def tui(
    spec_dir: Path = typer.Argument(Path("specs"), help="spec directory (or one YAML file)"),
    refresh: float = typer.Option(5.0, "--refresh", min=0.5, help="seconds between observations"),
) -> None:
    """A live dashboard: VRAM bars, the service table, a command line (/switch MODE, /simulate, ...)."""
    from gpumod.cli import _run  # the CLI's error edge: a red line, a hint, exit 2
    from gpumod.spec import load_specs

    def body() -> int:
        load_specs(spec_dir)  # invalid specs: the CLI's message and exit 2, before any screen
        from gpumod.tui.app import GpumodTui

        GpumodTui(spec_dir, refresh_s=refresh).run()
        return 0

    _run(body)


def register(app: typer.Typer) -> None:
    """Add ``tui`` to the gpumod app."""
    app.command()(tui)
