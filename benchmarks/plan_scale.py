"""How long the pure planner takes as the fleet grows: 100 / 1,000 / 5,000 services on pods of
8 GPUs (10 / 100 / 500 GPUs). Prints the median plan time per size, the time per service and the
growth against the 100-service run measured in the same process. Target (printed, never
asserted): 1,000 services on 100 GPUs under 50 ms, growth about linear.

    python benchmarks/plan_scale.py [--runs 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from gpumod.core.model import DesiredPod, DesiredService, Footprint, GpuInfo, ObservedPod, ObservedService
from gpumod.core.plan import plan
from gpumod.spec.resolved import ResolvedService

GPUS_PER_POD = 8
GPU_MB = 81_559  # an 80 GB H100
SIZES = ((100, 10), (1_000, 100), (5_000, 500))
TARGET_MS = 50.0


def synthetic(services: int, gpus: int, seed: int = 7) -> tuple[list[DesiredPod], list[ObservedPod]]:
    """A fleet mid-way through a change: most services converged, some to start, restart, sleep,
    wake, stop or prune, a few standby members and crash-loops; dependencies inside each pod."""
    rng = random.Random(seed)
    n_pods = -(-gpus // GPUS_PER_POD)
    desired, observed = [], []
    for p in range(n_pods):
        n_gpus = min(GPUS_PER_POD, gpus - p * GPUS_PER_POD)
        infos = tuple(GpuInfo(i, "NVIDIA H100 80GB HBM3", GPU_MB) for i in range(n_gpus))
        count = services // n_pods + (1 if p < services % n_pods else 0)
        wanted, seen = [], []
        for i in range(count):
            name = f"p{p}-svc{i:04d}"
            sleep = rng.choice(["none", "l1", "l2", "router"])
            target = "active" if sleep == "none" else rng.choice(["active"] * 6 + ["sleeping", "standby"])
            deps = tuple(rng.sample([w.name for w in wanted[-5:]], k=min(len(wanted[-5:]), rng.randint(0, 2))))
            tp = 2 if rng.random() < 0.05 else 1
            spec = ResolvedService(name=name, driver="vllm", port=8000 + i, sleep=sleep, gpu_count=tp, depends_on=deps)
            awake = rng.randint(500, 5_000)
            svc = DesiredService(name, target, spec, Footprint(awake, awake if sleep == "none" else 400))
            wanted.append(svc)
            roll = rng.random()
            gpu_set = tuple(sorted(rng.sample(range(n_gpus), k=min(tp, n_gpus))))
            status = "sleeping" if target != "active" and rng.random() < 0.7 else "running"
            if roll < 0.10:
                continue  # not running: start
            if roll < 0.13:
                seen.append(
                    ObservedService(name, "failed", spec.spec_hash(), gpu_set, failures=2, last_failure_at=995.0)
                )
                continue
            spec_hash = "0ld0ld0ld0ld" if roll < 0.18 else spec.spec_hash()
            if roll > 0.95:
                status = "sleeping" if sleep != "none" else "running"  # wake an active one
            seen.append(ObservedService(name, status, spec_hash, gpu_set))
        for k in range(max(1, count // 20)):
            seen.append(ObservedService(f"p{p}-old{k:03d}", "running", "f00", (k % n_gpus,)))
        desired.append(DesiredPod(f"pod{p:03d}", "m", infos, 1024, 2, tuple(wanted)))
        observed.append(ObservedPod(f"pod{p:03d}", gpus=infos, services=tuple(seen), observed_at=1000.0))
    return desired, observed


def median_ms(services: int, gpus: int, runs: int) -> tuple[float, int, int]:
    desired, observed = synthetic(services, gpus)
    times, result = [], plan(desired, observed)  # warm-up run, not timed
    for _ in range(runs):
        started = time.perf_counter()
        result = plan(desired, observed)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result.changes, sum(not p.fits for p in result.pods)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"pure plan(), median of {args.runs} runs, pods of {GPUS_PER_POD} GPUs")
    print(
        f"{'services':>9} {'GPUs':>5} {'pods':>5} {'steps':>6} {'median ms':>10} {'µs/service':>11} "
        f"{'× 100-svc run':>14}"
    )
    base = None
    for services, gpus in SIZES:
        ms, steps, infeasible = median_ms(services, gpus, args.runs)
        base = base or ms
        pods = -(-gpus // GPUS_PER_POD)
        note = f"  ({infeasible} pod(s) infeasible)" if infeasible else ""
        print(
            f"{services:>9,} {gpus:>5} {pods:>5} {steps:>6} {ms:>10.1f} {ms * 1000 / services:>11.1f} "
            f"{ms / base:>8.1f} (size ×{services // SIZES[0][0]}){note}"
        )
        if services == 1_000:
            verdict = "meets" if ms < TARGET_MS else "MISSES"
            print(f"{'':>9} target: 1,000 services on 100 GPUs under {TARGET_MS:.0f} ms: {verdict} it ({ms:.1f} ms)")


if __name__ == "__main__":
    main()
