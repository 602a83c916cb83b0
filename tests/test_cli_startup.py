"""Start-up of the CLI (issue 7, P7): a verb of gpumod.cli loads no other command module and not
the executor; help and the other modules' commands still see every command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpumod.cli import command_named

LOADED = """
import sys
sys.argv = ["gpumod", *sys.argv[1:]]
import gpumod.cli
try:
    gpumod.cli.main()
except SystemExit:
    pass
print("LOADED", *sorted(m for m in sys.modules if m.startswith(("gpumod", "yaml"))))
"""


def loaded_by(*args: str) -> tuple[str, set[str]]:
    res = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, timeout=120)
    out, _, mods = res.stdout.rpartition("LOADED ")
    return out, set(mods.split())


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["plan", "specs"], "plan"),
        (["-v", "-v", "plan"], "plan"),
        (["--log-format", "json", "status", "x"], "status"),
        (["--log-format=json", "mode", "list"], "mode"),
        (["--help"], None),
        ([], None),
        (["--", "apply"], "apply"),
    ],
)
def test_the_command_a_command_line_names(argv: list[str], name: str | None) -> None:
    assert command_named(argv) == name


def test_a_verb_of_the_cli_module_loads_no_other_command_module() -> None:
    out, mods = loaded_by("plan", "--help")
    assert "Show what apply would do" in out
    assert not mods & {"gpumod.cli_specs", "gpumod.chat.cli", "gpumod.reach_cli", "gpumod.execute", "yaml"}


def test_help_and_other_modules_commands_see_every_command() -> None:
    out, mods = loaded_by("--help")
    for command in ("plan", "mode", "presets", "prompt", "endpoints", "tunnel"):
        assert f" {command} " in out
    assert {"gpumod.cli_specs", "gpumod.chat.cli", "gpumod.reach_cli"} <= mods
    out, _ = loaded_by("mode", "--help")
    assert "switch a pod's mode" in out
