"""Provisioning a bare GPU pod (issue 9): setup facts, setup steps, download feasibility.

    facts.py          probe argv + pure parse → SetupFacts (driver/CUDA, uv, venv + vLLM, mount,
                      HF cache and what it holds, free disk)
    podside_setup.py  the stdlib-only code that gathers those facts on the pod
    steps.py          setup_steps(setup, facts) → missing pieces as SetupStep (argv + reason),
                      or SetupRefusedError (driver too old, wrong venv Python) before anything runs
    disk.py           download_need(repo, files, facts) → bytes to fetch vs free disk
    download.py       download_argv(...) runs podside_download.py (resumable fetch into the hub
                      cache layout); parse_event(line) → DownloadEvent for progress rendering

Everything here is pure except the pod-side files; nothing imports the engine.
"""

from gpumod.drivers.provision.disk import DownloadNeed, download_need, human_bytes
from gpumod.drivers.provision.download import DownloadEvent, download_argv, parse_event
from gpumod.drivers.provision.facts import SetupFacts, parse_facts, probe_argv
from gpumod.drivers.provision.steps import (
    MIN_DRIVER_BY_CUDA_MAJOR, SetupRefusedError, SetupStep, setup_probe_args, setup_refusals, setup_steps,
)

__all__ = [
    "DownloadEvent", "DownloadNeed", "MIN_DRIVER_BY_CUDA_MAJOR", "SetupFacts", "SetupRefusedError", "SetupStep",
    "download_argv", "download_need", "human_bytes", "parse_event", "parse_facts", "probe_argv",
    "setup_probe_args", "setup_refusals", "setup_steps",
]
