"""Fixtures of the MCP server tests: a copy of `specs/` (the simulated RTX 4090 box) with free
ports and a private GPUMOD_HOME, torn down with `gpumod down` and a kill of every recorded PID.

The helpers of the end-to-end tests (tests/e2e/e2e_helpers.py) are reused, not copied."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import ROOT, Gpumod, kill_recorded, use_free_ports  # noqa: E402


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gpumod:
    """The sim pod's specs (mode `code`, nothing running yet); GPUMOD_HOME set for this process
    too, so a server built in memory and `gpumod` subprocesses see the same pod."""
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", specs)
    use_free_ports(specs)
    g = Gpumod(home=tmp_path / "home", specs=specs)
    monkeypatch.setenv("GPUMOD_HOME", str(g.home))
    yield g
    g.run("down", str(specs), "--yes")
    kill_recorded(g.home)

