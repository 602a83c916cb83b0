"""The simulated GPUs: atomic all-or-nothing allocation, sleep/wake resizing, dead pids ignored."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
from pathlib import Path

import pytest
from gpumod.sim.gpu import OutOfSimMemory, SimGpus, gpu_uuid, proc_start_time
from gpumod.sim.pod import ensure_sim_pod
from sim_helpers import RTX_4090, SimPod, wait_for


@pytest.fixture
def two_gpus(tmp_path: Path) -> SimGpus:
    ensure_sim_pod(tmp_path / "pod", [RTX_4090, ("NVIDIA RTX A6000", 49140)])
    return SimGpus(tmp_path / "pod")


def test_allocate_counts_against_free_memory(two_gpus: SimGpus, sleeper) -> None:
    a, b = sleeper(), sleeper()
    two_gpus.allocate(a.pid, {0: 19100}, "llama-server")
    two_gpus.allocate(b.pid, {0: 4000, 1: 30000}, "python3")
    assert (two_gpus.used(0), two_gpus.free(0)) == (23100, 1464)
    assert (two_gpus.used(1), two_gpus.free(1)) == (30000, 19140)
    assert [(x.pid, x.process_name, dict(x.gpus)) for x in two_gpus.allocations()] == sorted(
        [(a.pid, "llama-server", {0: 19100}), (b.pid, "python3", {0: 4000, 1: 30000})]
    )


def test_allocation_is_all_or_nothing(two_gpus: SimGpus, sleeper) -> None:
    a, b = sleeper(), sleeper()
    two_gpus.allocate(a.pid, {1: 40000}, "big")
    with pytest.raises(OutOfSimMemory) as err:
        two_gpus.allocate(b.pid, {0: 10000, 1: 10000}, "tp2")
    assert (err.value.gpu, err.value.free_mb, err.value.total_mb, err.value.requested_mb) == (
        1,
        9140,
        49140,
        10000,
    )
    assert two_gpus.used(0) == 0  # nothing taken on the GPU that had room
    assert [x.pid for x in two_gpus.allocations()] == [a.pid]


def test_set_shrinks_freely_and_grows_only_into_free_memory(two_gpus: SimGpus, sleeper) -> None:
    vllm, other = sleeper(), sleeper()
    two_gpus.allocate(vllm.pid, {0: 20000}, "vllm")
    two_gpus.set(vllm.pid, {0: 600})  # sleep
    two_gpus.allocate(other.pid, {0: 20000}, "other")  # someone takes the freed memory
    with pytest.raises(OutOfSimMemory) as err:
        two_gpus.set(vllm.pid, {0: 20000})  # wake
    assert (err.value.free_mb, err.value.requested_mb) == (4564, 20000)
    assert two_gpus.used(0) == 20600
    two_gpus.release(other.pid)
    two_gpus.set(vllm.pid, {0: 20000})
    assert two_gpus.used(0) == 20000
    with pytest.raises(LookupError):
        two_gpus.set(other.pid, {0: 1})


def test_release_frees_and_unknown_gpu_is_refused(two_gpus: SimGpus, sleeper) -> None:
    p = sleeper()
    two_gpus.allocate(p.pid, {0: 1000}, "x")
    two_gpus.release(p.pid)
    two_gpus.release(p.pid)  # idempotent
    assert two_gpus.allocations() == []
    with pytest.raises(KeyError):
        two_gpus.allocate(p.pid, {7: 1}, "x")


def test_allocating_for_a_dead_process_is_refused(two_gpus: SimGpus, sleeper) -> None:
    p = sleeper()
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with pytest.raises(ProcessLookupError):
        two_gpus.allocate(p.pid, {0: 1000}, "x")


def test_exited_zombie_and_reused_pids_hold_nothing(two_gpus: SimGpus, sleeper) -> None:
    exited, zombie, alive = sleeper(), sleeper(), sleeper()
    for p in (exited, zombie, alive):
        two_gpus.allocate(p.pid, {0: 5000}, "p")
    os.kill(exited.pid, signal.SIGKILL)
    exited.wait()  # reaped: /proc/PID gone
    os.kill(zombie.pid, signal.SIGKILL)  # not reaped: state Z, kill(pid, 0) would still succeed
    assert wait_for(lambda: proc_start_time(zombie.pid) is None)
    assert Path(f"/proc/{zombie.pid}").exists()
    # a file left by an earlier process that had our pid: same pid, other start time
    me = os.getpid()
    (two_gpus.dir / "alloc" / f"{me}.json").write_text(
        json.dumps({"pid": me, "process_name": "old", "gpus": {"0": 5000}, "start_time": 1})
    )
    assert [a.pid for a in two_gpus.allocations()] == [alive.pid]
    assert two_gpus.used(0) == 5000
    left = sorted(p.name for p in (two_gpus.dir / "alloc").iterdir())
    assert left == [f"{alive.pid}.json"]  # dead entries are deleted


def test_concurrent_allocations_never_overcommit(two_gpus: SimGpus, sleeper) -> None:
    procs = [sleeper() for _ in range(8)]
    results: list[bool] = []

    def grab(pid: int) -> None:
        try:
            SimGpus(two_gpus.dir).allocate(pid, {0: 4000}, "racer")
            results.append(True)
        except OutOfSimMemory:
            results.append(False)

    threads = [threading.Thread(target=grab, args=(p.pid,)) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 6  # 6 x 4000 <= 24564 < 7 x 4000
    assert two_gpus.used(0) == 24000


def test_ensure_sim_pod_is_idempotent_and_keeps_allocations(tmp_path: Path, sleeper) -> None:
    pod = tmp_path / "pod"
    bindir = ensure_sim_pod(pod, [RTX_4090], python="/opt/py/bin/python3")
    script = bindir / "nvidia-smi"
    assert script.read_text().startswith("#!/opt/py/bin/python3 -S\n")  # no site-packages scan
    assert script.stat().st_mode & stat.S_IXUSR
    gpus = json.loads((pod / "gpus.json").read_text())["gpus"]
    assert gpus == [
        {
            "index": 0,
            "name": "NVIDIA GeForce RTX 4090",
            "memory_mb": 24564,
            "uuid": gpu_uuid(str(pod), 0),
        }
    ]
    p = sleeper()
    SimGpus(pod).allocate(p.pid, {0: 1234}, "x")
    before = {f: (pod / f).stat().st_mtime_ns for f in ("gpus.json", "bin/nvidia-smi")}
    assert ensure_sim_pod(pod, [RTX_4090], python="/opt/py/bin/python3") == bindir
    assert {f: (pod / f).stat().st_mtime_ns for f in before} == before  # nothing rewritten
    ensure_sim_pod(pod, [RTX_4090, RTX_4090], python="/opt/py/bin/python3")
    assert [g.index for g in SimGpus(pod).gpus()] == [0, 1]
    assert SimGpus(pod).used(0) == 1234  # allocations survive a GPU list change


def test_uuids_are_stable_and_distinct() -> None:
    assert gpu_uuid("/a", 0) == gpu_uuid("/a", 0)
    assert len({gpu_uuid("/a", 0), gpu_uuid("/a", 1), gpu_uuid("/b", 0)}) == 3
    assert gpu_uuid("/a", 0).startswith("GPU-") and len(gpu_uuid("/a", 0)) == 40


def test_sim_pod_fixture_reports_used(sim_pod: SimPod, sleeper) -> None:
    p = sleeper()
    sim_pod.gpus.allocate(p.pid, {0: 700}, "x")
    assert sim_pod.used(0) == 700
