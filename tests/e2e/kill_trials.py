"""Kill trials: SIGKILL `gpumod apply` at a random moment of a mode switch on the sim pod, then
check that the next apply converges and leaves the pod clean.

Why: a level-triggered controller is only worth running unattended if a run that dies anywhere
(OOM killer, `kill -9`, a closed laptop) costs nothing but the next run. One trial switches the
pod's mode, starts the real `gpumod apply --yes`, kills it with SIGKILL after a seeded random
delay, and then checks, against the real processes in /proc and the records in GPUMOD_HOME:

- the killed run's lock holder goes away by itself (its stdin reaches EOF): no stuck lock;
- the next `gpumod apply --yes` exits 0 and `gpumod plan` then has nothing to do (converged);
- every live sim server of this pod belongs to a record (no orphan) and each service runs as
  one session at most (no duplicate);
- the nvidia-smi stand-in, polled all along, never shows a GPU above its memory.total.

Shared by tests/e2e/test_faults.py (a few trials in CI) and benchmarks/kill_random.py (hundreds).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml
from e2e_helpers import Gpumod

POD = "sim-box"
# The modes of specs/ that fit the pod; the switches go between these.
MODES = ("code", "rag", "speak", "blank")
SIM_SERVER = "gpumod.sim.server"
LOCK_GONE_S = 10.0  # the holder sees EOF at once; generous for a loaded CI machine


@dataclass(frozen=True)
class SimProcess:
    """A live sim server process of one sim pod, as /proc shows it."""

    pid: int
    session: int
    port: int | None


@dataclass
class TrialResult:
    trial: int
    target: str
    delay_s: float
    killed: bool  # False: the apply had finished before the kill was due
    held_lock: bool = False  # it was killed while holding the pod lock
    converged: bool = False
    orphans: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    stuck_lock: str = ""
    over_capacity: list[str] = field(default_factory=list)
    output: str = ""  # of the converging apply, for the failure message

    @property
    def clean(self) -> bool:
        return self.converged and not (self.orphans or self.duplicates or self.stuck_lock or self.over_capacity)

    def describe(self) -> str:
        head = f"trial {self.trial}: -> {self.target}, kill after {self.delay_s:.2f} s" + (
            (" (holding the lock)" if self.held_lock else "") if self.killed else " (apply had finished)"
        )
        problems = [
            ("" if self.converged else "did not converge"),
            *(f"orphan {o}" for o in self.orphans),
            *(f"duplicate {d}" for d in self.duplicates),
            self.stuck_lock,
            *self.over_capacity,
        ]
        text = "; ".join(p for p in problems if p)
        return f"{head}: {text or 'clean'}" + (f"\n{self.output}" if text and self.output else "")


# -- /proc and the records ------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, session, start ticks) of a pid, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[3]), int(fields[19])


def alive(pid: int, start_ticks: int | None = None) -> bool:
    """The pid runs (not a zombie: PID 1 here does not reap) and, if given, started then."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X", "x") and (start_ticks is None or st[2] == start_ticks)


def _port(argv: list[str]) -> int | None:
    for flag, value in zip(argv, argv[1:]):
        if flag == "--port" and value.isdigit():
            return int(value)
    return None


def sim_processes(home: Path) -> list[SimProcess]:
    """Live sim servers whose simulated GPUs are under ``home`` (other tests' pods are not ours)."""
    sim_root = str(home / "sim") + os.sep
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if SIM_SERVER not in argv:
                continue
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        sim_dir = next((e[len(b"GPUMOD_SIM_DIR=") :].decode() for e in environ if e.startswith(b"GPUMOD_SIM_DIR=")), "")
        st = _stat(pid)
        if not sim_dir.startswith(sim_root) or st is None or st[0] in ("Z", "X", "x"):
            continue
        found.append(SimProcess(pid, st[1], _port(argv)))
    return found


def service_ports(specs: Path) -> dict[int, str]:
    """port -> service name of a spec repo copy (``use_free_ports`` gave every service its own)."""
    ports = {}
    for path in specs.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Service" and doc.get("port"):
                ports[int(doc["port"])] = str(doc["name"])
    return ports


def orphans_and_duplicates(g: Gpumod) -> tuple[list[str], list[str]]:
    """Sim servers no record owns (by session), and services with more than one live session."""
    procs = sim_processes(g.home)
    owned = {int(r["pid"]) for r in g.records() if r.get("pid")}
    names = service_ports(g.specs)
    orphans = [
        f"pid {p.pid} ({names.get(p.port or 0, f'port {p.port}')}, session {p.session})"
        for p in procs
        if p.session not in owned
    ]
    sessions = Counter(
        names.get(p.port or 0, f"port {p.port}") for p in {(p.session, p.port): p for p in procs}.values()
    )
    duplicates = [f"{name} runs in {n} sessions" for name, n in sorted(sessions.items()) if n > 1]
    return orphans, duplicates


def lock_owner(home: Path) -> dict:
    try:
        return json.loads((home / "pods" / POD / "lock.owner").read_text())
    except (OSError, ValueError):
        return {}


# -- the nvidia-smi watch -------------------------------------------------------------------------


class GpuWatch:
    """Polls the pod's nvidia-smi stand-in in a thread; keeps every reading above memory.total."""

    QUERY = ("--query-gpu=index,memory.used,memory.total", "--format=csv,noheader,nounits")

    def __init__(self, g: Gpumod, interval_s: float = 0.2) -> None:
        self.g = g
        self.interval_s = interval_s
        self.over: list[str] = []
        self.readings = 0
        self.peak_mib = 0
        self._lock = threading.Lock()  # the watch thread and the trial both read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpu-watch", daemon=True)

    def __enter__(self) -> "GpuWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def take(self) -> list[str]:
        """The over-capacity readings since the last call."""
        with self._lock:
            over, self.over = self.over, []
        return over

    def read(self) -> None:
        smi = self.g.home / "sim" / POD / "bin" / "nvidia-smi"
        if not smi.exists():
            return
        res = subprocess.run([str(smi), *self.QUERY], capture_output=True, text=True, timeout=30,
                             env=self.g.env | {"GPUMOD_SIM_DIR": str(smi.parent.parent)})
        if res.returncode != 0:
            return
        for line in res.stdout.strip().splitlines():
            index, used, total = (int(x) for x in line.split(","))
            with self._lock:
                self.readings += 1
                self.peak_mib = max(self.peak_mib, used)
                if used > total:
                    self.over.append(f"GPU {index}: nvidia-smi showed {used} of {total} MiB")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.read()
            except (OSError, ValueError, subprocess.SubprocessError):
                pass


# -- one trial ------------------------------------------------------------------------------------


def kill_apply(g: Gpumod, delay_s: float) -> tuple[bool, dict]:
    """Run `gpumod apply --yes` and SIGKILL it after ``delay_s``; (killed?, its lock owner record)."""
    proc = g.popen("apply", str(g.specs), "--yes")
    try:
        deadline = time.monotonic() + delay_s
        owner: dict = {}
        while time.monotonic() < deadline and proc.poll() is None:
            current = lock_owner(g.home)
            if current.get("pid") == proc.pid:
                owner = current
            time.sleep(0.02)
        killed = proc.poll() is None
        if killed:
            current = lock_owner(g.home)
            if current.get("pid") == proc.pid:
                owner = current
            proc.send_signal(signal.SIGKILL)  # that process only, as the OOM killer or `kill -9` would
        proc.communicate(timeout=60)
        return killed, owner
    except BaseException:  # interrupted: never leave an apply running behind the caller's clean-up
        proc.kill()
        proc.wait()
        raise


def stuck_lock(owner: dict) -> str:
    """'' once the killed run's lock holder is gone, else what is stuck."""
    holder = owner.get("holder") or {}
    pid, ticks = holder.get("pid"), holder.get("start_ticks")
    if not isinstance(pid, int):
        return ""
    deadline = time.monotonic() + LOCK_GONE_S
    while alive(pid, ticks):
        if time.monotonic() > deadline:
            return f"lock holder pid {pid} of the killed apply still alive after {LOCK_GONE_S:g} s"
        time.sleep(0.05)
    return ""


def run_trial(g: Gpumod, watch: GpuWatch, rng: random.Random, trial: int, current: str,
              max_delay_s: float) -> TrialResult:
    """Switch from ``current`` to another mode, kill that apply, converge, check."""
    target = rng.choice([m for m in MODES if m != current])
    delay = round(rng.uniform(0.0, max_delay_s), 2)
    g.set_mode("pod.yaml", target)
    watch.take()
    killed, owner = kill_apply(g, delay)
    result = TrialResult(trial, target, delay, killed, held_lock=killed and bool(owner))
    result.stuck_lock = stuck_lock(owner) if result.held_lock else ""
    again = g.run("apply", str(g.specs), "--yes")
    result.output = again.stdout + again.stderr
    if "locked by" in result.output and not result.stuck_lock:
        result.stuck_lock = "the next apply found the pod locked"
    planned = g.run("plan", str(g.specs)) if again.returncode == 0 else None
    result.converged = again.returncode == 0 and planned is not None and planned.returncode == 0
    if planned is not None and planned.returncode != 0:
        result.output += "\n--- plan after the converging apply:\n" + planned.stdout + planned.stderr
    result.orphans, result.duplicates = orphans_and_duplicates(g)
    watch.read()
    result.over_capacity = watch.take()
    return result


def run_trials(g: Gpumod, watch: GpuWatch, *, trials: int, seed: int,
               max_delay_s: float = 3.0) -> Iterator[TrialResult]:
    """A first converged apply of mode ``MODES[0]``, then ``trials`` kill trials, one by one."""
    rng = random.Random(seed)
    g.set_mode("pod.yaml", MODES[0])
    first = g.run("apply", str(g.specs), "--yes")
    if first.returncode != 0:
        raise AssertionError("the first apply failed:\n" + first.stdout + first.stderr)
    current = MODES[0]
    for n in range(1, trials + 1):
        result = run_trial(g, watch, rng, n, current, max_delay_s)
        current = result.target
        yield result
