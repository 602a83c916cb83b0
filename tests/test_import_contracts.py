"""The layering contracts of `.importlinter`, checked by import-linter itself.

gpumod's package is assembled from three folders (``reconciler/`` is ``gpumod``; ``drivers/`` and
``presets/`` are mapped in by pyproject's package-dir), and import-linter reads a package from
one folder on disk. So the test lays the package out as installed (a copy of the .py files) and
runs ``lint-imports`` on that copy: a clean tree passes, and a planted violation (the operations
layer importing the CLI's views) is reported — the check can fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[dev]')")


def _layout(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "templates", "*.yaml", "*.j2")
    pkg = dest / "gpumod"
    shutil.copytree(ROOT / "reconciler", pkg, ignore=ignore)
    shutil.copytree(ROOT / "drivers", pkg / "drivers", ignore=ignore)
    (pkg / "presets").mkdir(exist_ok=True)
    (pkg / "presets" / "__init__.py").write_text("")
    return pkg


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run(
        [str(LINT), "--no-cache", str(ROOT / ".importlinter")],
        cwd=tree, env=env, capture_output=True, text=True, timeout=300,
    )


def test_the_import_contracts_hold(tmp_path: Path) -> None:
    _layout(tmp_path)
    res = _lint(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BROKEN" not in res.stdout and "KEPT" in res.stdout


def test_a_face_imported_by_the_operations_layer_is_reported(tmp_path: Path) -> None:
    pkg = _layout(tmp_path)
    status = pkg / "ops" / "status.py"
    status.write_text(status.read_text() + "\nfrom gpumod.views import bar  # planted\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "gpumod.ops.status -> gpumod.views" in res.stdout, res.stdout


def test_a_face_imported_by_the_mcp_server_or_the_mcp_server_by_the_operations_is_reported(tmp_path: Path) -> None:
    pkg = _layout(tmp_path)
    server = pkg / "mcp" / "server.py"
    server.write_text(server.read_text() + "\nfrom gpumod.views import bar  # planted\n")
    status = pkg / "ops" / "status.py"
    status.write_text(status.read_text() + "\nimport gpumod.mcp.server  # planted\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "gpumod.mcp.server -> gpumod.views" in res.stdout, res.stdout
    assert "gpumod.ops.status -> gpumod.mcp.server" in res.stdout, res.stdout


def test_the_tui_reaching_the_engine_or_the_cli_views_is_reported(tmp_path: Path) -> None:
    pkg = _layout(tmp_path)
    render = pkg / "tui" / "render.py"
    planted = "\nfrom gpumod.views import bar  # planted\nimport gpumod.execute  # planted\n"
    render.write_text(render.read_text() + planted)
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "gpumod.tui.render -> gpumod.views" in res.stdout and "gpumod.tui.render -> gpumod.execute" in res.stdout
