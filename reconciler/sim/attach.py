"""How the client attaches a pod to simulated GPUs: what its services get, and the set-up.

A pod's GPUs are simulated for ``host: sim`` (on this machine, under ``$GPUMOD_HOME/sim/<pod>``)
and for an SSH pod with ``sim:`` (under ``<state_dir>/sim/<pod>`` on the pod). Either way the
pod's services get an env (``sim_env``: ``PATH`` with the ``nvidia-smi`` stand-in first, the sim
directory, the sim servers' latencies) and the server binaries become the sim server
(``sim_binaries``). ``wiring.open_pod`` uses these; nothing here contacts a pod.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["local_sim", "setup_argv", "sim_binaries", "sim_env", "sim_timings"]

SIM_SERVER = ("-m", "gpumod.sim.server", "--flavour")
Binaries = list[tuple[str, tuple[str, ...]]]


def sim_timings(load_s: float, sleep_s: float, wake_s: float) -> dict[str, str]:
    """The sim servers' load/sleep/wake seconds (a pod's ``sim:``), as their env."""
    return {"GPUMOD_SIM_LOAD_S": str(load_s), "GPUMOD_SIM_SLEEP_S": str(sleep_s), "GPUMOD_SIM_WAKE_S": str(wake_s)}


def sim_env(directory: str, bindir: str, path: str, timings: Mapping[str, str]) -> dict[str, str]:
    """The env every service of a simulated pod gets (``path``: the pod's own ``PATH``)."""
    return {"PATH": f"{bindir}{os.pathsep}{path}", "GPUMOD_SIM_DIR": directory, **timings}


def sim_binaries(python: str) -> Binaries:
    """Server kind -> argv prefix: the sim server with the flavour of the real one."""
    return [
        ("vllm", (python, *SIM_SERVER, "vllm", "--")),
        ("llama-server", (python, *SIM_SERVER, "llamacpp", "--")),
    ]


def local_sim(
    directory: Path, gpus: Sequence[tuple[str, int]], python: str, timings: Mapping[str, str]
) -> tuple[dict[str, str], Binaries]:
    """Set up a ``host: sim`` pod's GPUs in ``directory`` (idempotent); its services' env and binaries."""
    from gpumod.sim.pod import ensure_sim_pod

    bindir = ensure_sim_pod(directory, list(gpus), python)
    env = sim_env(str(directory), str(bindir), os.environ.get("PATH", ""), timings)
    if os.environ.get("PYTHONPATH"):  # the sim servers import gpumod as this process did
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env, sim_binaries(python)


def setup_argv(python: str, directory: str, gpus: Sequence[Sequence[object]]) -> list[str]:
    """The command that sets up an SSH pod's simulated GPUs (gpumod installed for ``python``)."""
    return [python, "-m", "gpumod.sim.pod", directory, json.dumps([list(g) for g in gpus])]
