"""The TUI face: ``gpumod tui DIR`` (a live Textual dashboard over ``gpumod.ops``).

Importing this package imports nothing heavy: ``textual`` is loaded only when the command runs
(``gpumod.tui.command``), so the rest of the CLI starts as fast without it.

    command.py   the typer command (registered by ``gpumod.cli``)
    app.py       the App: workers, messages, the command dispatch
    widgets.py   VRAM bars, service table, output panel, command line
    render.py    what they draw, from the typed results (pure)
    commands.py  what a typed line means, and the help (pure)
"""
