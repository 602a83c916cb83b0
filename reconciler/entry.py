"""The `gpumod` command's entry point, free of imports of its own: Ctrl+C while Python is still
loading the CLI (a second on a busy machine) ends like Ctrl+C during a command, with
`interrupted` and exit 130, instead of a KeyboardInterrupt traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from gpumod.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    cli_main()
