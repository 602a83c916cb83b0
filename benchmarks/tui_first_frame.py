"""`gpumod tui`: time from start to the first frame with live data, against `gpumod status`.

The TUI runs as its own process (the venv's interpreter, Textual's headless driver through
``App.run_test``, since a benchmark has no terminal) on the converged sim pod; the clock starts
when the process is spawned and stops when the process reports that the dashboard has drawn its
first observed status. The baseline of the same run is `gpumod status specs/` as a process (the
same observation, printed as a table). Both are alternated; medians are printed with the target
(<= 1 s). Printed, never asserted.

    .venv/bin/python benchmarks/tui_first_frame.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 1.0
READY = "first-frame"


def child(specs: str) -> None:
    """Start the dashboard, wait for its first live frame, say so, leave."""
    from gpumod.tui.app import GpumodTui

    async def run() -> None:
        app = GpumodTui(specs, refresh_s=60)
        async with app.run_test(size=(140, 50)) as pilot:
            while app.first_live_frame_at is None:
                await asyncio.sleep(0.005)
            await pilot.pause()  # the frame with it drawn
            print(READY, flush=True)

    asyncio.run(run())


def first_frame(specs: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(specs)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == READY:
            took = time.perf_counter() - started
            break
    else:
        raise SystemExit(f"the TUI never drew a live frame:\n{proc.stderr.read() if proc.stderr else ''}")
    proc.wait(timeout=60)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", metavar="SPECS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from simpod import gpumod_argv, median_wall, sim_pod

    with sim_pod() as pod:
        status = [*gpumod_argv(), "status", str(pod.specs)]
        first_frame(pod.specs, pod.env)  # warm-up: bytecode caches
        median_wall(status, pod.env, 1)
        tui, cli = [], []
        for _ in range(args.repeat):  # alternate, so that both see the same machine load
            tui.append(first_frame(pod.specs, pod.env))
            cli.append(median_wall(status, pod.env, 1))
    tui_s, cli_s = statistics.median(tui), statistics.median(cli)
    print(f"`gpumod tui specs/` first frame with live data, converged sim pod (median of {args.repeat}, alternated)")
    print(f"  `gpumod status specs/` (process)   : {cli_s * 1000:7.1f} ms")
    print(f"  TUI start -> first live frame      : {tui_s * 1000:7.1f} ms   ({tui_s / cli_s:.1f}x the status command;"
          f" range {min(tui) * 1000:.0f}-{max(tui) * 1000:.0f} ms)")
    print(f"  target <= {TARGET_S * 1000:.0f} ms: {'met' if tui_s <= TARGET_S else 'NOT met'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
