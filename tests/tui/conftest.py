"""Fixtures of the TUI tests: a copy of `specs/` with free ports and a private GPUMOD_HOME; the pod
is brought down and every recorded process killed by PID when the test ends."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import ROOT, Gpumod, kill_recorded, use_free_ports  # noqa: E402


@pytest.fixture
def sim_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gpumod:
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", specs)
    use_free_ports(specs)
    g = Gpumod(home=tmp_path / "home", specs=specs)
    monkeypatch.setenv("GPUMOD_HOME", str(g.home))  # the app calls the operations in-process
    yield g
    g.run("down", str(specs), "--yes")
    kill_recorded(g.home)
