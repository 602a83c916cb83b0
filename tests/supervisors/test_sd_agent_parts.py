"""The agent's parts: one script, stdlib only; templates shipped; lingering attempted once."""

from __future__ import annotations

import ast
import os
import stat
import sys
from importlib import resources
from pathlib import Path

import pytest

from gpumod.drivers.agent import AGENT_PARTS, agent_script
from gpumod.drivers.agent import podside_systemd


def _guarded(node: ast.stmt) -> bool:
    """``if __name__ != "__gpumod_agent__":`` — imports only when a part is imported as a module."""
    return isinstance(node, ast.If) and "__gpumod_agent__" in ast.unparse(node.test)


def test_every_part_is_stdlib_only_outside_its_module_imports() -> None:
    for part in AGENT_PARTS:
        tree = ast.parse(part.read_text(), filename=str(part))
        assert ast.get_docstring(tree), f"{part.name} needs a docstring saying why it exists"
        for node in tree.body:
            if _guarded(node):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    names = [a.name for a in sub.names]
                elif isinstance(sub, ast.ImportFrom):
                    names = [sub.module or ""]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    assert top == "__future__" or top in sys.stdlib_module_names, f"{part.name} imports {name}"


def test_the_script_is_the_parts_in_order_with_one_future_import() -> None:
    script = agent_script().decode()
    assert script.startswith("from __future__ import annotations\n")
    assert script.count("from __future__ import annotations") == 1
    offsets = [script.index(f"# ---- gpumod agent part: {part.name} ----") for part in AGENT_PARTS]
    assert offsets == sorted(offsets) and AGENT_PARTS[-1].name == "podside.py"
    assert script.rstrip().endswith("sys.exit(main(json.load(sys.stdin)))")


def test_the_unit_template_ships_as_package_data() -> None:
    template = resources.files("gpumod.drivers") / "templates" / "service.unit.j2"
    assert template.is_file() and "KillMode=control-group" in template.read_text()


@pytest.fixture
def fake_loginctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A ``loginctl`` on PATH that logs its arguments, says Linger=no, and fails to enable it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    script = bindir / "loginctl"
    script.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n'
        'case "$1" in show-user) echo Linger=no ;; enable-linger) echo "Access denied" >&2; exit 1 ;; esac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", f"/run/user/{os.geteuid()}")
    return calls


def test_lingering_is_attempted_once_with_a_warning(fake_loginctl: Path, tmp_path: Path) -> None:
    marker = tmp_path / "linger-attempted"
    warning = podside_systemd.ensure_linger(str(marker))
    assert warning and "could not enable lingering" in warning and "Access denied" in warning
    assert "loginctl enable-linger" in warning
    assert fake_loginctl.read_text().splitlines()[-1].startswith("enable-linger ")
    assert marker.exists()
    before = fake_loginctl.read_text()
    assert podside_systemd.ensure_linger(str(marker)) is None
    assert fake_loginctl.read_text() == before


def test_no_lingering_for_a_manager_logind_does_not_run(fake_loginctl: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert podside_systemd.ensure_linger(str(tmp_path / "marker")) is None
    assert not fake_loginctl.exists()


def test_user_scope_env_is_filled_in_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    env = podside_systemd.systemctl_env("user")
    runtime = f"/run/user/{os.geteuid()}"
    assert env["XDG_RUNTIME_DIR"] == runtime
    assert env["DBUS_SESSION_BUS_ADDRESS"] == f"unix:path={runtime}/bus"
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/elsewhere")
    assert podside_systemd.systemctl_env("user")["DBUS_SESSION_BUS_ADDRESS"] == "unix:path=/elsewhere"
