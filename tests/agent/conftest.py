"""Fixtures for the pod agent tests: a tmp state dir and a reaper.

The reaper makes this pytest process a child subreaper for the test (prctl), so services the
agent detached are re-parented to us instead of PID 1: a SIGKILLed service stays a zombie we
can look at, and at teardown every process a test started is killed by PID and reaped.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import pytest
from agent_helpers import PR_SET_CHILD_SUBREAPER, Reaper

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.transports.local import LocalTransport


@pytest.fixture
def reaper():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    r = Reaper()
    try:
        yield r
    finally:
        r.cleanup()
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def agent(state_dir: Path, reaper: Reaper) -> PodAgent:
    return PodAgent(LocalTransport(), pod="box", state_dir=str(state_dir), python=sys.executable)
