"""The simulated GPUs of one sim pod: capacities and per-process allocations, kept in files.

A sim pod has no GPU, yet every part of gpumod (observe, plan, execute) must see VRAM being used
and freed exactly as on a real pod. The sim servers and the ``nvidia-smi`` stand-in are separate
processes, so the state lives in a directory (``$GPUMOD_SIM_DIR``)::

    gpus.json          {"gpus": [{"index": 0, "name": ..., "memory_mb": 24564, "uuid": "GPU-..."}]}
    alloc/<pid>.json   {"pid": N, "process_name": ..., "gpus": {"0": 19100}, "start_time": T}
    lock               fcntl.flock'ed around every read-check-write, so allocation is atomic

An allocation counts only while its process lives: a process that is gone, a zombie (PID 1 on
these machines does not reap orphans) or a new process that reused the pid (other start time)
holds nothing, and its file is deleted on the next read — like the driver freeing VRAM when a
process dies. Standard library only: the sim server and the stand-in must start fast.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import namedtuple
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "Allocation",
    "OutOfSimMemory",
    "SimGpu",
    "SimGpus",
    "gpu_uuid",
    "proc_start_time",
]


class OutOfSimMemory(Exception):
    """A simulated GPU lacks the free memory asked for (what cudaMalloc would fail on)."""

    def __init__(self, gpu: int, free_mb: int, total_mb: int, requested_mb: int) -> None:
        super().__init__(
            f"GPU {gpu}: {requested_mb} MiB requested, {free_mb} MiB free of {total_mb} MiB"
        )
        self.gpu = gpu
        self.free_mb = free_mb
        self.total_mb = total_mb
        self.requested_mb = requested_mb


# Records as named tuples, not dataclasses: the nvidia-smi stand-in imports this module on every
# call, and ``dataclasses`` (with ``inspect`` and ``ast``) or ``pathlib`` would double its start.


class SimGpu(namedtuple("SimGpu", "index name memory_mb uuid reserved_mb", defaults=(0,))):
    """A simulated GPU; ``reserved_mb`` is the driver-reserved FB memory (total = reserved + used + free)."""

    __slots__ = ()


class Allocation(namedtuple("Allocation", "pid process_name gpus start_time", defaults=({}, 0))):
    """What one process holds: ``gpus`` maps a GPU index to MiB (never mutated); ``start_time``
    is /proc/PID/stat field 22 when allocated."""

    __slots__ = ()


def gpu_uuid(seed: str, index: int) -> str:
    """A stable, real-looking GPU UUID derived from the pod directory and the GPU index."""
    import hashlib  # only the set-up names GPUs: the nvidia-smi stand-in starts without it

    h = hashlib.sha1(f"{seed}#{index}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def proc_start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of a live process; None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = stat[stat.rfind(")") + 2 :].split()
    state, start = rest[0], rest[19]  # fields 3 and 22
    if state in ("Z", "X", "x"):
        return None
    return int(start)


class SimGpus:
    """The GPUs and allocations stored in one sim directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = os.fspath(directory)
        self._alloc_dir = os.path.join(self._dir, "alloc")

    @property
    def dir(self) -> Path:
        from pathlib import Path  # only callers outside the stand-in's path ask for it

        return Path(self._dir)

    # ---- capacities -------------------------------------------------------------------------

    def exists(self) -> bool:
        return os.path.isfile(os.path.join(self._dir, "gpus.json"))

    def gpus(self) -> list[SimGpu]:
        with open(os.path.join(self._dir, "gpus.json")) as f:
            raw = json.loads(f.read())
        return [
            SimGpu(
                index=int(g["index"]),
                name=str(g["name"]),
                memory_mb=int(g["memory_mb"]),
                uuid=str(g.get("uuid") or gpu_uuid(str(self.dir), int(g["index"]))),
                reserved_mb=int(g.get("reserved_mb", 0)),
            )
            for g in raw["gpus"]
        ]

    def gpu(self, index: int) -> SimGpu:
        for g in self.gpus():
            if g.index == index:
                return g
        raise KeyError(f"no simulated GPU {index} in {self.dir}")

    # ---- allocations ------------------------------------------------------------------------

    def allocations(self) -> list[Allocation]:
        """Live allocations, by pid; files of dead, zombie or reused pids are deleted."""
        with self._locked():
            return self._live()

    def used(self, gpu: int) -> int:
        return sum(a.gpus.get(gpu, 0) for a in self.allocations())

    def free(self, gpu: int) -> int:
        g = self.gpu(gpu)
        return max(0, g.memory_mb - g.reserved_mb - self.used(gpu))

    def allocate(self, pid: int, gpus: Mapping[int, int], process_name: str) -> None:
        """Give ``pid`` exactly ``gpus`` (MiB per GPU), all or nothing; OutOfSimMemory if short."""
        start = proc_start_time(pid)
        if start is None:
            raise ProcessLookupError(f"process {pid} is not running")
        with self._locked():
            self._check(pid, gpus, self._live())
            self._write(Allocation(pid, process_name, dict(gpus), start))

    def set(self, pid: int, gpus: Mapping[int, int]) -> None:
        """Change what ``pid`` holds (sleep frees, wake reclaims); growing checks free memory."""
        with self._locked():
            live = self._live()
            mine = next((a for a in live if a.pid == pid), None)
            if mine is None:
                raise LookupError(f"process {pid} holds no simulated GPU memory")
            self._check(pid, gpus, live)
            self._write(Allocation(pid, mine.process_name, dict(gpus), mine.start_time))

    def release(self, pid: int) -> None:
        with self._locked():
            _unlink(os.path.join(self._alloc_dir, f"{pid}.json"))

    # ---- internals --------------------------------------------------------------------------

    def _check(self, pid: int, wanted: Mapping[int, int], live: list[Allocation]) -> None:
        caps = {g.index: g for g in self.gpus()}
        for index in sorted(wanted):
            if index not in caps:
                raise KeyError(f"no simulated GPU {index} in {self.dir}")
        for index in sorted(wanted):
            g = caps[index]
            others = sum(a.gpus.get(index, 0) for a in live if a.pid != pid)
            free = g.memory_mb - g.reserved_mb - others
            if wanted[index] > free:
                raise OutOfSimMemory(index, max(0, free), g.memory_mb, wanted[index])

    def _live(self) -> list[Allocation]:
        out: list[Allocation] = []
        if not os.path.isdir(self._alloc_dir):
            return out
        for name in sorted(n for n in os.listdir(self._alloc_dir) if n.endswith(".json")):
            path = os.path.join(self._alloc_dir, name)
            try:
                with open(path) as f:
                    raw = json.loads(f.read())
                alloc = Allocation(
                    pid=int(raw["pid"]),
                    process_name=str(raw.get("process_name", "")),
                    gpus={int(k): int(v) for k, v in raw.get("gpus", {}).items()},
                    start_time=int(raw.get("start_time", 0)),
                )
            except (OSError, ValueError, KeyError, TypeError):
                _unlink(path)  # unreadable: nobody can own it
                continue
            if proc_start_time(alloc.pid) != alloc.start_time:
                _unlink(path)
                continue
            out.append(alloc)
        return sorted(out, key=lambda a: a.pid)

    def _write(self, alloc: Allocation) -> None:
        os.makedirs(self._alloc_dir, exist_ok=True)
        data = {
            "pid": alloc.pid,
            "process_name": alloc.process_name,
            "gpus": {str(k): v for k, v in sorted(alloc.gpus.items())},
            "start_time": alloc.start_time,
        }
        final = os.path.join(self._alloc_dir, f"{alloc.pid}.json")
        tmp = os.path.join(self._alloc_dir, f".{alloc.pid}.json.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(data) + "\n")
        os.replace(tmp, final)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self._dir, exist_ok=True)
        fd = os.open(os.path.join(self._dir, "lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
