"""P1: a no-op `gpumod plan` over N pods behind real sshds, against one `ssh host true`.

Each pod is a network namespace with its own sshd (tests/infra/netns.py), running one simulated
service, converged first with `gpumod apply`. Then the whole `gpumod plan` process (start-up
included) is timed for N = 1, 5, 20 pods and divided by the wall time of one OpenSSH
`ssh host true` measured in the same run. Target: ratio <= 3 at N = 20. Printed, never asserted.

Run as root: `.venv/bin/python benchmarks/plan_fleet.py [--sizes 1,5,20] [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from infra.netns import create_pods, netns_unavailable_reason, ssh_argv  # noqa: E402

SERVICE = """kind: Service
name: web
driver: command
port: 8200
vram_mb: 500
command: ["{python}", -m, gpumod.sim.server, --flavour, plain, --, --port, "{port}"]
---
kind: Mode
name: m
services: [web]
"""


def write_specs(specs: Path, net, n: int, work: Path) -> None:
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "services.yaml").write_text(SERVICE)
    for i, pod in enumerate(net.pods[:n]):
        (specs / f"pod{i}.yaml").write_text(
            f"kind: Pod\nname: p{i}\nhost: ssh://root@{pod.ip}:22\nmode: m\nsupervisor: process\n"
            f"known_hosts: {net.keys.known_hosts}\nidentity_file: {net.keys.client_key}\n"
            f"python: {sys.executable}\nstate_dir: {work / f'state{i}'}\n"
            "gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]\n"
            "sim: {load_s: 0.1, sleep_s: 0.1, wake_s: 0.1}\n"
        )


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine: the pods share its cores with gpumod."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def timed(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, float, float]:
    """Median wall seconds, median CPU seconds of the process itself, median machine busy share."""
    times, cpus, busy = [], [], []
    for _ in range(repeat):
        before, start, usage = machine_busy(), time.perf_counter(), os.times()
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - start)
        after, used = machine_busy(), os.times()
        cpus.append((used.children_user - usage.children_user) + (used.children_system - usage.children_system))
        busy.append((after[0] - before[0]) / max(1, after[1] - before[1]))
        if res.returncode not in (0,):
            raise SystemExit(f"{' '.join(argv[:4])}… exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return statistics.median(times), statistics.median(cpus), statistics.median(busy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,20")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    reason = netns_unavailable_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    gpumod = [sys.executable, "-m", "gpumod.cli"]
    with tempfile.TemporaryDirectory(prefix="gpumod-bench-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, GPUMOD_HOME=str(work / "home"))
        with create_pods(max(sizes), work / "pods") as net:
            pod = net.pods[0]
            ssh_true = timed(ssh_argv(net.keys, pod.ip, "true"), env, args.repeat)[0]
            print(f"baseline: one `ssh host true` = {ssh_true * 1000:.0f} ms (median of {args.repeat})")
            print(f"{'pods':>5} {'gpumod plan (ms)':>17} {'ratio to ssh true':>18} {'gpumod CPU (ms)':>16}"
                  f" {'machine busy':>13}")
            for n in sizes:
                specs = work / f"specs{n}"
                write_specs(specs, net, n, work)
                res = subprocess.run([*gpumod, "apply", str(specs), "--yes"], env=env, capture_output=True,
                                     text=True, timeout=600)
                if res.returncode != 0:
                    raise SystemExit(f"apply failed:\n{res.stdout}\n{res.stderr}")
                plan, cpu, busy = timed([*gpumod, "plan", str(specs)], env, args.repeat)
                print(f"{n:>5} {plan * 1000:>17.0f} {plan / ssh_true:>18.2f} {cpu * 1000:>16.0f} {busy:>12.0%}")
            subprocess.run([*gpumod, "down", str(work / f"specs{max(sizes)}"), "--yes"], env=env,
                           capture_output=True, timeout=600)
    print("target: ratio <= 3 at 20 pods (the whole gpumod process, start-up included)")
    print(f"note: the pods' sshds, agents and simulated nvidia-smi share this machine's {os.cpu_count()} cores;"
          " 'machine busy' near 100% means the figure measures that sharing, not waiting")


if __name__ == "__main__":
    main()
