"""Fixtures of the end-to-end tests: a copy of `specs/` and a private GPUMOD_HOME per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from e2e_helpers import ROOT, Gpumod, kill_recorded, use_free_ports


@pytest.fixture
def gpumod(tmp_path: Path) -> Gpumod:
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", specs)
    use_free_ports(specs)
    g = Gpumod(home=tmp_path / "home", specs=specs)
    yield g
    g.run("down", str(specs), "--yes")
    kill_recorded(g.home)
