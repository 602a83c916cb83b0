"""P3, P4 and P6 on the converged sim pod of ``specs/`` (a copy, see ``simpod.py``).

P3: a mode switch (``code`` <-> ``rag``, `gpumod apply --yes -o json`, whole process) divided by
    the critical path of its steps' own latencies: per pass, the executor runs the waves of a
    phase one after the other and the steps of a wave together, so the path is the sum over
    waves of the slowest step. Target <= 1.15. Baseline of the same run: a no-op `gpumod plan`.
    The overhead (apply minus path: start-up, lock, observations, VRAM checks between waves, the
    confirming pass) is printed too: a step made faster lowers the apply time and raises the ratio.
P4: in a running `gpumod watch`, the time from an editor's atomic save of ``pod.yaml`` (a mode
    switch) to the first ``step.started`` log line (read as it arrives). Target <= 0.5 s.
    Baseline: the same no-op `gpumod plan` (watch must re-read the specs and observe too).
P6: that watch, idle after converging: its RSS and its CPU share over ``--idle`` seconds (the
    default, 65 s, includes one 60 s timer pass). Targets < 100 MB and < 1 %. Baseline: the RSS
    of a bare ``python -c`` sleeping.

Printed, never asserted.    .venv/bin/python benchmarks/sim_pod_loop.py [--repeat 3] [--idle 65]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import statistics
import subprocess
import sys
import time
from pathlib import Path

from simpod import SimPod, gpumod_argv, median_wall, sim_pod

MODES = ("rag", "code")


def critical_path(report: dict) -> float:
    """Sum over passes and waves of the slowest step (a wave's steps run together)."""
    waves: dict[tuple[int, str, str, int], float] = {}
    pending = [
        (k, pod, step) for k, plan in enumerate(report["plans"])
        for pod, p in plan["pods"].items() for step in p["steps"]
    ]
    for done in report["steps"]:
        match = next(i for i, (_, pod, s) in enumerate(pending)
                     if pod == done["pod"] and (s["action"], s["service"]) == (done["action"], done["service"]))
        k, pod, s = pending.pop(match)
        key = (k, pod, s["phase"], s["wave"])
        waves[key] = max(waves.get(key, 0.0), done["seconds"])
    per_pass: dict[int, dict[str, float]] = {}  # pass -> pod -> its path (pods run in parallel)
    for (k, pod, _phase, _wave), secs in waves.items():
        per_pass.setdefault(k, {})[pod] = per_pass.get(k, {}).get(pod, 0.0) + secs
    return sum(max(pods.values()) for pods in per_pass.values())


def p3(pod: SimPod, repeat: int) -> list[tuple[str, float, float, int]]:
    rows = []
    for i in range(repeat * 2):
        mode = MODES[i % 2]
        pod.set_mode(mode)
        started = time.perf_counter()
        res = pod.gpumod("apply", str(pod.specs), "--yes", "-o", "json")
        wall = time.perf_counter() - started
        report = json.loads(res.stdout)
        rows.append((mode, wall, critical_path(report), len(report["steps"])))
    return rows


def read_until(proc: subprocess.Popen, sel: selectors.BaseSelector, needle: str, timeout: float) -> float:
    """perf_counter() when a line containing ``needle`` arrived on the watch's output."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        for _ in sel.select(timeout=0.05):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise SystemExit(f"watch exited:\n{buf.decode(errors='replace')}")
            now = time.perf_counter()
            buf += chunk
            if needle.encode() in buf:
                return now
    raise SystemExit(f"no {needle!r} from watch within {timeout:g} s:\n{buf.decode(errors='replace')[-2000:]}")


def drain_quiet(proc: subprocess.Popen, sel: selectors.BaseSelector, quiet_s: float, timeout: float) -> str:
    """Read until the watch has printed nothing for ``quiet_s`` (a pass is over)."""
    out, last, deadline = b"", time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline and time.monotonic() - last < quiet_s:
        for _ in sel.select(timeout=0.05):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise SystemExit(f"watch exited:\n{out.decode(errors='replace')}")
            out, last = out + chunk, time.monotonic()
    return out.decode(errors="replace")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def watch_run(pod: SimPod, repeat: int, idle_s: float) -> tuple[list[float], float, float]:
    env = dict(pod.env, GPUMOD_LOG="info")
    proc = subprocess.Popen([*gpumod_argv(), "watch", str(pod.specs)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        read_until(proc, sel, "plan.built", 120)
        drain_quiet(proc, sel, 2.0, 120)
        latencies = []
        for i in range(repeat * 2):
            pod.set_mode(MODES[i % 2])
            saved = time.perf_counter()
            latencies.append(read_until(proc, sel, "step.started", 120) - saved)
            drain_quiet(proc, sel, 3.0, 300)
        cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
        while time.monotonic() - t0 < idle_s:
            drain_quiet(proc, sel, idle_s, idle_s - (time.monotonic() - t0))
        cpu_share = (proc_cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)
        return latencies, rss_mb(proc.pid), cpu_share
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bare_rss_mb(env: dict[str, str]) -> float:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    try:
        time.sleep(0.5)
        return rss_mb(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="switches each way")
    parser.add_argument("--idle", type=float, default=65.0, help="idle seconds measured for P6")
    args = parser.parse_args()
    with sim_pod("code") as pod:
        pod.gpumod("plan", str(pod.specs))  # warm-up (bytecode caches)
        noop = median_wall([*gpumod_argv(), "plan", str(pod.specs)], pod.env, 5)
        switches = p3(pod, args.repeat)
        latencies, rss, cpu = watch_run(pod, args.repeat, args.idle)
        bare = bare_rss_mb(pod.env)
    ratios = [wall / path for _, wall, path, _ in switches]
    print(f"baseline (same run): no-op `gpumod plan` = {noop * 1000:.0f} ms (median of 5)")
    print("P3 mode switch on the sim pod / critical path of its steps' own latencies (target <= 1.15)")
    for mode, wall, path, n in switches:
        print(f"  -> {mode:<5} {n} steps: apply {wall:6.2f} s, critical path {path:6.2f} s,"
              f" overhead {wall - path:5.2f} s, ratio {wall / path:5.2f}")
    print(f"  median ratio {statistics.median(ratios):.2f}"
          f" ({'met' if statistics.median(ratios) <= 1.15 else 'NOT met'});"
          f" median overhead {statistics.median(w - p for _, w, p, _ in switches):.2f} s"
          " (the ratio rises when the steps get faster: read both)")
    p4 = statistics.median(latencies)
    print("P4 file save -> first step started in `watch` (target <= 0.5 s)")
    print(f"  {' '.join(f'{x:.2f}' for x in latencies)} s; median {p4:.2f} s ({'met' if p4 <= 0.5 else 'NOT met'})")
    print(f"P6 `watch` idle over {args.idle:g} s (targets RSS < 100 MB, CPU < 1 %)")
    print(f"  RSS {rss:.0f} MB (a bare python: {bare:.0f} MB), CPU {cpu:.2%}"
          f" ({'met' if rss < 100 and cpu < 0.01 else 'NOT met'})")


if __name__ == "__main__":
    main()
