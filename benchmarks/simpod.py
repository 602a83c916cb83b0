"""A converged copy of the repository's ``specs/`` (the simulated RTX 4090 pod) for the benchmarks.

Why: P3, P4, P6 and P7 all measure gpumod against the same sim pod a new user gets from the
README. The copy gets free ports and a private GPUMOD_HOME (the user's own ``specs/`` pod may be
running), is applied once, and is torn down with ``gpumod down`` plus a kill by PID of whatever
its records name. gpumod runs as users run it: the venv's ``gpumod`` script, with bytecode caches
(``PYTHONDONTWRITEBYTECODE`` is dropped from its environment; one warm-up run writes them).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from e2e_helpers import kill_recorded, use_free_ports  # noqa: E402


def gpumod_argv() -> list[str]:
    script = Path(sys.executable).with_name("gpumod")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gpumod.cli"]


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "GPUMOD_LOG")}
    env.update(extra)
    return env


def median_wall(argv: Sequence[str], env: dict[str, str], repeat: int) -> float:
    return median_wall_cpu(argv, env, repeat)[0]


def median_wall_cpu(argv: Sequence[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system, children included) of a command:
    on a loaded machine the CPU figure moves less than the wall one."""
    times, cpus = [], []
    for _ in range(repeat):
        before, started = os.times(), time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
        after = os.times()
        cpus.append(after.children_user - before.children_user + after.children_system - before.children_system)
    return statistics.median(times), statistics.median(cpus)


@dataclass
class SimPod:
    specs: Path
    home: Path
    env: dict[str, str]

    def gpumod(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*gpumod_argv(), *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise SystemExit(f"gpumod {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res

    def set_mode(self, mode: str) -> None:
        """Edit ``pod.yaml`` like an editor's atomic save."""
        path = self.specs / "pod.yaml"
        lines = path.read_text().splitlines(keepends=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"mode: {mode}\n" if ln.startswith("mode:") else ln for ln in lines))
        os.replace(tmp, path)


@contextmanager
def sim_pod(mode: str = "code") -> Iterator[SimPod]:
    with tempfile.TemporaryDirectory(prefix="gpumod-bench-") as tmp:
        specs, home = Path(tmp) / "specs", Path(tmp) / "home"
        shutil.copytree(ROOT / "specs", specs)
        use_free_ports(specs)
        pod = SimPod(specs, home, user_env(GPUMOD_HOME=str(home), COLUMNS="200"))
        pod.set_mode(mode)
        try:
            pod.gpumod("apply", str(specs), "--yes")
            yield pod
        finally:
            pod.gpumod("down", str(specs), "--yes", check=False)
            kill_recorded(home)
