"""P7: a no-op `gpumod plan specs/` on the converged sim pod, whole process, against `python -c pass`.

Both are run alternately, in the same run, with the same venv interpreter and environment; the
medians and their ratio are printed with the targets (<= 250 ms and <= 10x). Then where the time
goes: the imports of the `gpumod plan` process itself (``-X importtime`` of the console script's
module, gpumod.entry, running the plan; its largest imports, the editable install's finder among
them when gpumod is installed with ``pip install -e``) and the rest (interpreter start, spec
loading, the one agent round trip, planning, printing). A third series runs with the
spec cache cleared before each run (``$GPUMOD_HOME/cache/specs``, gpumod.spec_cache): what a run
costs when the specs changed since the last one. Printed, never asserted.

    .venv/bin/python benchmarks/plan_startup.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys

from simpod import gpumod_argv, median_wall_cpu, sim_pod

TARGET_MS, TARGET_RATIO = 250, 10.0


def import_breakdown(env: dict[str, str], specs: str, top: int) -> tuple[float, list[tuple[int, str]]]:
    """(seconds of imports of a `gpumod plan` process, its ``top`` largest imports as (µs cumulative, name))."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "gpumod.entry", "plan", specs], env=env,
                         capture_output=True, text=True)
    rows = []
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)), m.group(4)))
    total = sum(us for us, depth, _ in rows if depth == 1)  # the top level: each import once
    shallow = sorted(((us, name) for us, depth, name in rows if depth <= 3), reverse=True)
    return total / 1e6, shallow[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--top", type=int, default=12, help="largest imports to list")
    args = parser.parse_args()
    with sim_pod() as pod:
        plan = [*gpumod_argv(), "plan", str(pod.specs)]
        out = pod.gpumod("plan", str(pod.specs)).stdout  # warm-up: writes the bytecode caches
        if "No changes" not in out:
            raise SystemExit(f"the sim pod is not converged:\n{out}")
        bare, full, cold = [], [], []
        cache = pod.home / "cache" / "specs"
        for _ in range(args.repeat):  # alternate, so that all see the same machine load
            bare.append(median_wall_cpu([sys.executable, "-c", "pass"], pod.env, 1))
            full.append(median_wall_cpu(plan, pod.env, 1))  # the spec cache holds these specs
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(median_wall_cpu(plan, pod.env, 1))  # ...and here it does not (then it does again)
        breakdowns = sorted(import_breakdown(pod.env, str(pod.specs), args.top) for _ in range(5))
        imports, largest = breakdowns[2]  # the run with the median import time
    bare_s, full_s = statistics.median(w for w, _ in bare), statistics.median(w for w, _ in full)
    bare_cpu, full_cpu = statistics.median(c for _, c in bare), statistics.median(c for _, c in full)
    ratio = full_s / bare_s
    cold_s, cold_cpu = statistics.median(w for w, _ in cold), statistics.median(c for _, c in cold)
    print(f"P7 no-op `gpumod plan specs/` on the converged sim pod (median of {args.repeat}, alternated)")
    print(f"  baseline `python -c pass`  : {bare_s * 1000:7.1f} ms   (CPU {bare_cpu * 1000:.0f} ms)")
    print(f"  `gpumod plan specs/`       : {full_s * 1000:7.1f} ms   ratio {ratio:.1f}x"
          f"   (CPU {full_cpu * 1000:.0f} ms, its agent and nvidia-smi included)")
    print(f"  ... spec cache cleared     : {cold_s * 1000:7.1f} ms   ratio {cold_s / bare_s:.1f}x"
          f"   (CPU {cold_cpu * 1000:.0f} ms: specs parsed and validated)")
    print(f"  target                     : <= {TARGET_MS} ms and <= {TARGET_RATIO:g}x  ->"
          f" {'met' if full_s * 1000 <= TARGET_MS and ratio <= TARGET_RATIO else 'NOT met'}")
    print("where the time goes (the median of 5 runs under -X importtime, which inflates imports a little):")
    print(f"  imports of `gpumod plan`   : {imports * 1000:7.1f} ms")
    print(f"  the rest                   : {(full_s - imports) * 1000:7.1f} ms"
          " (interpreter start, specs, the observe round trip, plan, print)")
    print("  largest imports (cumulative, ms):")
    for us, name in largest:
        print(f"    {us / 1000:7.1f}  {name}")


if __name__ == "__main__":
    main()
