"""Textual is imported only when `gpumod tui` runs: every other command starts without it."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_starts_without_importing_textual() -> None:
    code = (
        "import sys, gpumod.cli; gpumod.cli.register_all(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'gpumod')))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = eval(res.stdout)  # a printed list of module names
    assert "gpumod.tui.command" in loaded  # the command is registered...
    assert not [m for m in loaded if m.startswith("textual") or m == "gpumod.tui.app"]  # ...its app is not loaded
