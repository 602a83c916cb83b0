"""Faults as tests (issue 6 item 15): the real `gpumod` command on a sim pod, when things die or
hang where a user cannot see them.

- `gpumod apply` SIGKILLed at seeded random moments of mode switches: the next apply converges,
  with no orphan, no duplicate, no stuck lock, nvidia-smi never above capacity
  (tests/e2e/kill_trials.py; benchmarks/kill_random.py runs hundreds of these trials).
- The wait for stopped services to release their VRAM: a service whose worker outlives it keeps
  holding simulated VRAM; if it lets go within `vram_release_timeout_s` the fill phase proceeds,
  otherwise apply exits 1 naming the GPU and the MiB, and starts nothing.
- A run killed while a stop runs on the pod leaves that stop running: the next run's lock holder
  waits for it (`ops.lock`) before the run plans, and gives up naming the pids if it never ends.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from gpumod.drivers.agent import lock as lock_module
from gpumod.drivers.agent.lock import LOCK_BOOT, acquire_pod_lock, lock_request, owner_info
from gpumod.drivers.transports.local import LocalTransport
from gpumod.errors import PodError

from e2e_helpers import Gpumod, kill_recorded, use_free_ports, wait_for
from kill_trials import POD, GpuWatch, alive, orphans_and_duplicates, run_trials, sim_processes
from testkit import free_port

pytestmark = pytest.mark.e2e

TRIALS = 4
SEED = 20261129
LINGER_S = 10  # the lingering service exits by then at the latest: longer than a gpumod run takes to plan


def test_killed_apply_leaves_nothing_the_next_apply_cannot_fix(gpumod: Gpumod) -> None:
    with GpuWatch(gpumod) as watch:
        results = list(run_trials(gpumod, watch, trials=TRIALS, seed=SEED, max_delay_s=2.5))
    assert watch.readings > 0  # the stand-in was really polled
    assert any(r.killed for r in results), "no apply was killed mid-run: the trials prove nothing"
    bad = [r.describe() for r in results if not r.clean]
    assert not bad, "\n".join(bad)


def test_the_orphan_check_sees_a_sim_server_nobody_recorded(gpumod: Gpumod) -> None:
    """The trial's checks can fail: a sim server of this pod with no record is an orphan."""
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    env = gpumod.env | {"GPUMOD_SIM_DIR": str(gpumod.home / "sim" / POD), "GPUMOD_SIM_LOAD_S": "0"}
    stray = subprocess.Popen(
        [sys.executable, "-m", "gpumod.sim.server", "--flavour", "plain", "--", "--port", str(free_port())],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: any(p.pid == stray.pid for p in sim_processes(gpumod.home)), timeout=15)
        orphans, duplicates = orphans_and_duplicates(gpumod)
        assert any(f"pid {stray.pid} " in o for o in orphans), orphans
        assert not duplicates
    finally:
        stray.kill()
        stray.wait(timeout=10)


# -- a stubborn service ---------------------------------------------------------------------------

# A service that does not simply exit on SIGTERM. It writes `<script>.term` when the signal comes,
# then, by its second argument:
#   leak S   hands its simulated VRAM to a child that leaves the service's session (so `stop`
#            neither waits for it nor kills it) and holds the memory S seconds, like a vLLM engine
#            core orphaned by its API server; the service itself exits at once;
#   linger S keeps serving until `<script>.go` exists (S seconds at most), then exits, like a
#            server draining its requests.
STUBBORN = textwrap.dedent(
    """
    import http.server, os, signal, sys, threading, time
    from gpumod.sim.gpu import SimGpus

    port, how, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    gpus = SimGpus(os.environ["GPUMOD_SIM_DIR"])
    mib = {0: int(os.environ["GPUMOD_SIM_VRAM_MB"])}
    gpus.allocate(os.getpid(), mib, "stubborn")

    def on_term(*_):
        open(sys.argv[0] + ".term", "w").close()
        if how == "linger":
            end = time.monotonic() + seconds
            while time.monotonic() < end and not os.path.exists(sys.argv[0] + ".go"):
                time.sleep(0.05)
            os._exit(0)
        gpus.release(os.getpid())
        read, write = os.pipe()
        if os.fork() == 0:
            os.setsid()
            gpus.allocate(os.getpid(), mib, "leaked-worker")
            os.write(write, b"x")
            time.sleep(seconds)
            os._exit(0)
        os.close(write)
        os.read(read, 1)  # the worker holds the memory now (or died trying)
        os._exit(0)

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

    signal.signal(signal.SIGTERM, on_term)
    server = http.server.HTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while True:
        time.sleep(1)
    """
)


def _stubborn_pod(tmp: Path, *, on_term: str, seconds: float, release_timeout_s: float = 60) -> Gpumod:
    """One 10000 MiB sim GPU; mode `old` runs `stubborn` (6000 MiB), mode `new` runs `big`
    (6000 MiB): `new` fits only once stubborn's VRAM is released."""
    specs = tmp / "specs"
    specs.mkdir()
    (tmp / "stubborn.py").write_text(STUBBORN)
    (specs / "pod.yaml").write_text(textwrap.dedent(f"""\
        kind: Pod
        name: {POD}
        host: sim
        mode: old
        gpus:
          - {{name: Sim GPU, memory_mb: 10000}}
        reserve_mb: 0
        vram_release_timeout_s: {release_timeout_s}
        sim: {{load_s: 0.1, sleep_s: 0.1, wake_s: 0.1}}
        """))
    (specs / "services.yaml").write_text(textwrap.dedent(f"""\
        kind: Service
        name: stubborn
        driver: command
        command: ["{{python}}", "{tmp / 'stubborn.py'}", "{{port}}", {on_term}, "{seconds}"]
        port: 7000
        vram_mb: 6000
        stop_timeout_s: 20
        ---
        kind: Service
        name: big
        driver: command
        command: ["{{python}}", -m, gpumod.sim.server, --flavour, plain, --, --port, "{{port}}"]
        port: 7001
        vram_mb: 6000
        """))
    (specs / "modes.yaml").write_text(textwrap.dedent("""\
        kind: Mode
        name: old
        services: [stubborn]
        ---
        kind: Mode
        name: new
        services: [big]
        """))
    use_free_ports(specs)
    return Gpumod(home=tmp / "home", specs=specs)


def _leaked_workers(g: Gpumod) -> list[int]:
    """Live pids holding simulated VRAM as the leaked worker."""
    alloc = g.home / "sim" / POD / "alloc"
    return [int(p.stem) for p in alloc.glob("*.json") if '"leaked-worker"' in p.read_text() and alive(int(p.stem))]


@pytest.fixture
def stubborn_pod(tmp_path: Path):
    """Makes the stubborn pod (once per test); stops its services and leaked worker by PID after."""
    made: list[Gpumod] = []

    def make(**kw: object) -> Gpumod:
        made.append(_stubborn_pod(tmp_path, **kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for g in made:
        g.run("down", str(g.specs), "--yes")
        kill_recorded(g.home)
        for pid in _leaked_workers(g):
            os.kill(pid, signal.SIGKILL)


# -- the VRAM-release wait ------------------------------------------------------------------------


def test_vram_never_released_times_out_naming_gpu_and_mib(stubborn_pod) -> None:
    g = stubborn_pod(on_term="leak", seconds=120, release_timeout_s=2)
    assert g.run("apply", str(g.specs), "--yes").returncode == 0
    g.set_mode("pod.yaml", "new")

    res = g.run("apply", str(g.specs), "--yes", "-o", "json")

    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    result = json.loads(res.stdout)
    assert any("GPU 0" in p and "MiB" in p for p in result["problems"]), result["problems"]
    assert not [s for s in result["steps"] if s["service"] == "big" and s["status"] == "ok"], result["steps"]
    assert _leaked_workers(g), "the leaked worker should still hold its VRAM"
    big = g.services(POD).get("big")
    assert big is None or big["state"] not in ("running", "sleeping"), big  # nothing was started
    assert not [r for r in g.records() if r["name"] == "big"]


def test_vram_released_late_lets_the_fill_phase_proceed(stubborn_pod) -> None:
    g = stubborn_pod(on_term="leak", seconds=3)
    assert g.run("apply", str(g.specs), "--yes").returncode == 0
    g.set_mode("pod.yaml", "new")

    res = g.run("apply", str(g.specs), "--yes")

    assert res.returncode == 0, res.stdout + res.stderr
    assert g.services(POD)["big"]["state"] == "running"
    assert not _leaked_workers(g)


# -- the lock waits for the operations of a killed run ---------------------------------------------


@contextmanager
def operation_running(state_dir: Path, pod: str = "box"):
    """Hold ops.lock shared, as a pod agent operation left running by a killed gpumod run does."""
    root = state_dir / "pods" / pod
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "ops.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        yield


async def test_the_lock_is_granted_once_running_operations_end(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with operation_running(state):
        waiter = asyncio.create_task(
            acquire_pod_lock(LocalTransport(), pod="box", state_dir=str(state), python=sys.executable,
                             owner=owner_info("gpumod apply"))
        )
        await asyncio.sleep(1.0)
        assert not waiter.done()  # the holder has the lock but waits for the operation
    held = await asyncio.wait_for(waiter, 30)
    await held.release()


async def test_operations_that_do_not_end_are_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(lock_module, "DRAIN_S", 0.5)
    state = tmp_path / "state"
    with operation_running(state), pytest.raises(PodError) as caught:
        await acquire_pod_lock(LocalTransport(), pod="box", state_dir=str(state), python=sys.executable,
                               owner=owner_info("gpumod apply"))
    assert "still running" in str(caught.value) and str(os.getpid()) in str(caught.value)
    assert not (state / "pods" / "box" / "lock.owner").exists()
    held = await acquire_pod_lock(LocalTransport(), pod="box", state_dir=str(state), python=sys.executable,
                                  owner=owner_info("gpumod apply"))  # the refusal released the lock
    await held.release()


def test_a_holder_waiting_for_operations_exits_when_its_gpumod_dies(tmp_path: Path) -> None:
    """Else a run killed while it waits would leave the pod locked until the operations end."""
    state = tmp_path / "state"
    payload = {"op": "hold", "pod": "box", "state_dir": str(state), "owner": {}, "wait_s": 1, "drain_s": 120}
    with operation_running(state):
        holder = subprocess.Popen([sys.executable, "-c", LOCK_BOOT], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            holder.stdin.write(lock_request(payload))
            holder.stdin.flush()
            wait_for(lambda: (state / "pods" / "box" / "lock.owner").exists(), timeout=30, interval=0.05)
            holder.stdin.close()  # gpumod is gone
            assert holder.wait(timeout=20) == 0
            assert holder.stdout.read() == b""  # it never said "locked"
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
    assert not (state / "pods" / "box" / "lock.owner").exists()


# -- a kill during a slow stop ----------------------------------------------------------------------


def test_apply_after_a_kill_waits_for_the_killed_runs_operations(stubborn_pod) -> None:
    """Killed while a stop is under way on the pod, a run leaves that stop running (the agent
    finishes what it started). The next run must wait for it: otherwise it plans on a service that
    is about to vanish, says "Converged", and the pod is wrong a moment later."""
    g = stubborn_pod(on_term="linger", seconds=LINGER_S)
    assert g.run("apply", str(g.specs), "--yes").returncode == 0
    [first] = [r for r in g.records() if r["name"] == "stubborn"]
    g.set_mode("pod.yaml", "new")
    killed = g.popen("apply", str(g.specs), "--yes")
    script = g.specs.parent / "stubborn.py"
    wait_for(lambda: Path(f"{script}.term").exists() or killed.poll() is not None, timeout=60, interval=0.02)
    assert killed.poll() is None, killed.communicate()[0]
    killed.kill()  # SIGKILL while `stop stubborn` runs on the pod
    killed.communicate(timeout=30)
    g.set_mode("pod.yaml", "old")

    res = g.run("apply", str(g.specs), "--yes")
    # only now may the old stop end: a next run that did not wait for it has planned already
    Path(f"{script}.go").touch()

    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: not alive(first["pid"], first["start_ticks"]), timeout=30)  # the old stop is over
    planned = g.run("plan", str(g.specs))
    assert planned.returncode == 0, "apply said converged, but:\n" + planned.stdout + planned.stderr
    assert g.services(POD)["stubborn"]["state"] == "running"
