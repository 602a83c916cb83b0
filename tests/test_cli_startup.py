"""Start-up of the CLI (issue 7, P7): a verb of gpumod.cli loads no other command module and not
the executor; help and the other modules' commands still see every command; a plain `gpumod plan`
runs without typer (gpumod.entry) and reads its command line as typer does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import gpumod.cli
from gpumod.cli import app, command_named
from gpumod.entry import PlanArgs, plan_args

LOADED = """
import sys
sys.argv = ["gpumod", *sys.argv[1:]]
import gpumod.entry  # the console script
try:
    gpumod.entry.main()
except SystemExit:
    pass
print("LOADED", *sorted(m for m in sys.modules if m.startswith(("gpumod", "yaml", "rich", "pydantic", "typer"))))
"""


ROOT = Path(__file__).resolve().parents[1]


def loaded_by(*args: str, env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    res = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, timeout=120, env=env)
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


def test_a_plan_whose_specs_are_cached_loads_no_set_up_executor_or_yaml_code(tmp_path: Path) -> None:
    """`gpumod plan` on a sim pod without `setup:`, the second time (the spec cache holds the
    specs): no YAML parser, spec checks or schema, no set-up planning or executor, no progress bars."""
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", specs)
    env = {**os.environ, "GPUMOD_HOME": str(tmp_path / "home")}
    loaded_by("plan", str(specs), env=env)  # fills the cache (plan starts nothing)
    out, mods = loaded_by("plan", str(specs), env=env)
    assert "pod sim-box:" in out
    assert "gpumod.spec_cache" in mods
    assert not mods & {
        "yaml", "gpumod.spec.nodes", "gpumod.spec.schema", "gpumod.provision", "gpumod.drivers.provision",
        "gpumod.drivers.provision.facts", "gpumod.execute", "rich.progress", "typer", "gpumod.cli",
    }


def test_the_core_values_load_without_the_spec_models() -> None:
    """The plan's values name the spec's words (driver, sleep kind, drift) without pydantic."""
    code = (
        "import sys, gpumod.core.model\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'gpumod.spec.'))))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert res.stdout.strip() == "['gpumod.spec.kinds', 'gpumod.spec.resolved']"


def typer_reads(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> PlanArgs:
    """What the typer app hands `plan`'s body and the global options for ``argv``."""
    seen: dict[str, object] = {}
    monkeypatch.setattr(gpumod.cli, "configure", lambda verbose, fmt: seen.update(verbose=verbose, fmt=fmt))
    monkeypatch.setattr(gpumod.cli, "plan_body", lambda *args: seen.update(args=args) or 0)
    for key in ("GPUMOD_LOG_FORMAT", "_GPUMOD_COMPLETE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert typer.main.get_command(app).main(argv, "gpumod", standalone_mode=False) == 0
    directory, pod, output, save_to = seen["args"]
    return PlanArgs(directory, list(pod or []), output.value, save_to, seen["verbose"], seen["fmt"].value)


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["plan", "specs"], {}),
        (["plan", "specs/", "-o", "json"], {}),
        (["-v", "--verbose", "plan", "--pod", "a", "specs", "-p", "b", "--output", "text"], {}),
        (["--log-format", "json", "plan", "--out", "p.json", "specs", "-o", "json"], {}),
        (["--log-format", "text", "--log-format", "json", "plan", "s"], {}),
        (["plan", "specs"], {"GPUMOD_LOG_FORMAT": "json"}),
        (["--log-format", "text", "plan", "specs"], {"GPUMOD_LOG_FORMAT": "json"}),
    ],
)
def test_the_plain_plan_command_line_reads_as_typer_reads_it(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert plan_args(argv, env) == typer_reads(argv, env, monkeypatch)


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["plan", "--help"], {}),
        (["--help"], {}),
        ([], {}),
        (["plan"], {}),
        (["apply", "specs"], {}),
        (["-vv", "plan", "specs"], {}),
        (["plan", "-v", "specs"], {}),
        (["plan", "--pod=a", "specs"], {}),
        (["plan", "specs", "other"], {}),
        (["plan", "specs", "-o", "JSON"], {}),
        (["plan", "specs", "--pod"], {}),
        (["plan", "specs", "--pod", "-o"], {}),
        (["plan", "--", "specs"], {}),
        (["--log-format", "xml", "plan", "specs"], {}),
        (["plan", "specs"], {"GPUMOD_LOG_FORMAT": "xml"}),
        (["plan", "specs"], {"_GPUMOD_COMPLETE": "bash_complete"}),
    ],
)
def test_any_other_command_line_goes_to_typer(argv: list[str], env: dict[str, str]) -> None:
    assert plan_args(argv, env) is None
