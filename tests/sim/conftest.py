"""Fixtures of the sim tests: a sim pod in a temp dir, real sim server processes.

Every process started here is killed by its PID (and reaped) when the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpumod.sim.pod import ensure_sim_pod
from sim_helpers import RTX_4090, SIM_ENV_NAMES, ServerProc, SimPod, free_port


@pytest.fixture
def sim_pod(tmp_path: Path) -> SimPod:
    directory = tmp_path / "simpod"
    return SimPod(directory, ensure_sim_pod(directory, [RTX_4090]))


@pytest.fixture
def start_server(sim_pod: SimPod, tmp_path: Path) -> Iterator[Callable[..., ServerProc]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(flavour: str, argv: list[str], port: int | None = None, **env: str) -> ServerProc:
        port = port or free_port()
        full_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GPUMOD_SIM_") and k not in SIM_ENV_NAMES
        }
        full_env |= {
            "GPUMOD_SIM_DIR": str(sim_pod.dir),
            "CUDA_VISIBLE_DEVICES": "0",
            "GPUMOD_SIM_LOAD_S": "0.15",
            "GPUMOD_SIM_SLEEP_S": "0.05",
            "GPUMOD_SIM_WAKE_S": "0.05",
        } | env
        n = len(procs)
        log, err = tmp_path / f"server{n}.out", tmp_path / f"server{n}.err"
        with log.open("wb") as out, err.open("wb") as errf:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gpumod.sim.server",
                    "--flavour",
                    flavour,
                    "--",
                    *argv,
                    "--port",
                    str(port),
                ],
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=errf,
                start_new_session=True,
            )
        procs.append(proc)
        return ServerProc(proc, port, log, err)

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture
def sleeper() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start throw-away live processes (``sleep 60``) to own foreign allocations."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
