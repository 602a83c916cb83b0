"""Faults at scale: SIGKILL `gpumod apply` at random moments of mode switches, hundreds of times.

Why: tests/e2e/test_faults.py runs a few kill trials in CI; rare windows (a kill between two
agent calls, during a stop, while a lock is being taken) only show over many. Each trial (see
tests/e2e/kill_trials.py) switches the sim pod of a copy of `specs/` to another mode, kills the
real `gpumod apply` after a seeded random delay, runs `gpumod apply --yes` again and checks that
it converges with no orphan, no duplicate process per service, no stuck lock and the nvidia-smi
stand-in never above capacity. Informational: prints a summary, exits 0 unless asked with
``--strict``. Everything it starts is stopped by `gpumod down` and killed by PID at the end.

    .venv/bin/python benchmarks/kill_random.py [-n 200] [--seed 1] [--max-delay 3.0] [-v]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from e2e_helpers import Gpumod, kill_recorded, use_free_ports  # noqa: E402
from kill_trials import MODES, GpuWatch, TrialResult, orphans_and_duplicates, run_trials  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay", type=float, default=3.0, help="kill within this many seconds of the start")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line per trial")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any trial was not clean")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gpumod-kill-"))
    specs = tmp / "specs"
    shutil.copytree(ROOT / "specs", specs)
    use_free_ports(specs)
    g = Gpumod(home=tmp / "home", specs=specs)

    # Ctrl+C, or SIGTERM/SIGINT even when started in the background: stop the trials, clean up
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    results: list[TrialResult] = []
    watch = GpuWatch(g)
    try:
        with watch:
            for result in run_trials(g, watch, trials=args.trials, seed=args.seed, max_delay_s=args.max_delay):
                results.append(result)
                if args.verbose or not result.clean:
                    print(result.describe(), flush=True)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", flush=True)
    finally:
        g.run("down", str(specs), "--yes")
        left, _ = orphans_and_duplicates(g)
        kill_recorded(g.home)
    killed = sum(r.killed for r in results)
    print(f"kill_random: {len(results)} trials (seed {args.seed}, modes {', '.join(MODES)}, "
          f"kills within {args.max_delay:g} s) in {time.monotonic() - started:.0f} s")
    print(f"  killed mid-run     {killed}, {sum(r.held_lock for r in results)} of them holding the pod lock "
          f"(the other {len(results) - killed} runs had finished)")
    print(f"  converged          {sum(r.converged for r in results)}")
    print(f"  with orphans       {sum(bool(r.orphans) for r in results)}")
    print(f"  with duplicates    {sum(bool(r.duplicates) for r in results)}")
    print(f"  stuck locks        {sum(bool(r.stuck_lock) for r in results)}")
    print(f"  over capacity      {sum(len(r.over_capacity) for r in results)} of {watch.readings} "
          f"nvidia-smi readings (peak {watch.peak_mib} MiB)")
    if left:
        print(f"  left after `down`  {', '.join(left)}")
    shutil.rmtree(tmp, ignore_errors=True)
    bad = [r for r in results if not r.clean] or left
    return 1 if args.strict and bad else 0


if __name__ == "__main__":
    sys.exit(main())
