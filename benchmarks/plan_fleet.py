"""P1: a no-op `gpumod plan` over N SSH pods, side by side with pyinfra doing the same checks.

Each pod is a network namespace with its own sshd (tests/infra/netns.py), running one simulated
service, converged first with `gpumod apply`. Then, alternating in the same run: the whole
`gpumod plan` process (start-up included), the whole pyinfra process doing the same checks on the
same pods (``pyinfra_checks.py``: both nvidia-smi queries, the pid's /proc entry, the health URL)
and one OpenSSH `ssh host true`. Printed for each: wall time (median), bytes sent to each pod
(its veth's counter, SSH and TCP included), CPU spent on the pods (their sshds' accumulated
children CPU) per pod, the client's own CPU and the machine's busy share. Targets: gpumod >= 2x
faster than pyinfra; ratio to `ssh host true` as low as it goes (the pods share this machine's
cores). Printed, never asserted. pyinfra must be installed in the venv (benchmark only).

Run as root: `.venv/bin/python benchmarks/plan_fleet.py [--sizes 1,5,20] [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


def pod_counters(pods) -> tuple[int, float]:
    """(bytes sent to the pods, CPU seconds spent in them so far): each pod's host-side veth
    tx counter, and its sshd's (PID 1 of the pod) own + reaped children's CPU."""
    sent, cpu = 0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pod in pods:
        veth = "gv" + pod.name.removeprefix("gpod")
        sent += int(Path(f"/sys/class/net/{veth}/statistics/tx_bytes").read_text())
        stat = Path(f"/proc/{pod.sshd_pid}/stat").read_text().rpartition(")")[2].split()
        cpu += sum(int(x) for x in stat[11:15]) / tick  # utime stime cutime cstime
    return sent, cpu


@dataclass
class Sample:
    wall: float
    cpu: float  # the client process (and its children)
    busy: float  # the machine's busy share
    sent: float  # bytes per pod
    pod_cpu: float  # seconds per pod


def timed(argv: list[str], env: dict[str, str], pods) -> Sample:
    before, (sent0, pcpu0), usage = machine_busy(), pod_counters(pods), os.times()
    start = time.perf_counter()
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    time.sleep(0.05)  # let the pods' sshds reap their sessions
    after, (sent1, pcpu1), used = machine_busy(), pod_counters(pods), os.times()
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}… exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return Sample(
        wall,
        (used.children_user - usage.children_user) + (used.children_system - usage.children_system),
        (after[0] - before[0]) / max(1, after[1] - before[1]),
        (sent1 - sent0) / len(pods),
        (pcpu1 - pcpu0) / len(pods),
    )


def median(samples: list[Sample]) -> Sample:
    return Sample(*(statistics.median(getattr(s, f) for s in samples) for f in Sample.__dataclass_fields__))


def row(label: str, s: Sample, ssh_true: float) -> str:
    return (f"  {label:<16} {s.wall * 1000:8.0f} ms {s.wall / ssh_true:7.1f}x {s.sent / 1024:9.1f} KiB"
            f" {s.pod_cpu * 1000:9.0f} ms {s.cpu * 1000:9.0f} ms {s.busy:8.0%}")


def pyinfra_file(work: Path, net, n: int) -> Path:
    path = work / f"pyinfra{n}.json"
    path.write_text(json.dumps([
        {"ip": pod.ip, "key": str(net.keys.client_key), "known_hosts": str(net.keys.known_hosts),
         "name": f"p{i}", "service": "web", "port": 8200, "state_dir": str(work / f"state{i}"),
         "sim_dir": str(work / f"state{i}" / "sim" / f"p{i}")}
        for i, pod in enumerate(net.pods[:n])
    ]))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,20")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    reason = netns_unavailable_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    if importlib.util.find_spec("pyinfra") is None:
        raise SystemExit("pyinfra is not installed in this venv: `.venv/bin/pip install pyinfra` (benchmark only)")
    gpumod = [str(Path(sys.executable).with_name("gpumod"))]
    pyinfra = [sys.executable, str(Path(__file__).with_name("pyinfra_checks.py"))]
    with tempfile.TemporaryDirectory(prefix="gpumod-bench-") as tmp:
        work = Path(tmp)
        # as users run it: with bytecode caches (the first run writes them)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["GPUMOD_HOME"] = str(work / "home")
        with create_pods(max(sizes), work / "pods") as net:
            print(f"P1 no-op `gpumod plan` over N SSH pods vs pyinfra doing the same checks, same run"
                  f" (median of {args.repeat}, alternated)")
            print(f"  {'':<16} {'wall':>11} {'/ssh true':>8} {'sent/pod':>13} {'pod CPU/pod':>12}"
                  f" {'client CPU':>12} {'busy':>8}")
            for n in sizes:
                pods = net.pods[:n]
                specs = work / f"specs{n}"
                write_specs(specs, net, n, work)
                res = subprocess.run([*gpumod, "apply", str(specs), "--yes"], env=env, capture_output=True,
                                     text=True, timeout=600)
                if res.returncode != 0:
                    raise SystemExit(f"apply failed:\n{res.stdout}\n{res.stderr}")
                for i in range(n):  # first contact: the agent is not cached on the pods yet
                    shutil.rmtree(work / f"state{i}" / "agent", ignore_errors=True)
                cold = timed([*gpumod, "plan", str(specs)], env, pods)
                targets = pyinfra_file(work, net, n)
                runs: dict[str, list[Sample]] = {"gpumod": [], "pyinfra": [], "ssh": []}
                for _ in range(args.repeat):
                    runs["gpumod"].append(timed([*gpumod, "plan", str(specs)], env, pods))
                    runs["pyinfra"].append(timed([*pyinfra, str(targets)], env, pods))
                    runs["ssh"].append(timed(ssh_argv(net.keys, pods[0].ip, "true"), env, pods[:1]))
                g, p, s = median(runs["gpumod"]), median(runs["pyinfra"]), median(runs["ssh"])
                print(f"{n} pod(s):")
                print(row("gpumod plan", g, s.wall))
                print(row("pyinfra", p, s.wall))
                print(row("ssh host true", s, s.wall))
                print(row("gpumod, 1st", cold, s.wall) + "   (agent not cached on the pods yet)")
                print(f"  gpumod is {p.wall / g.wall:.2f}x as fast as pyinfra (target >= 2x:"
                      f" {'met' if p.wall / g.wall >= 2 else 'NOT met'}); {g.wall / s.wall:.1f}x one ssh true")
            subprocess.run([*gpumod, "down", str(work / f"specs{max(sizes)}"), "--yes"], env=env,
                           capture_output=True, timeout=600)
    print(f"note: the pods' sshds, agents and simulated nvidia-smi share this machine's {os.cpu_count()} cores;"
          " 'busy' near 100% means the figure measures that sharing, not waiting. 'sent/pod' counts every"
          " byte to the pod (TCP, SSH handshake, the agent's payload).")


if __name__ == "__main__":
    main()
