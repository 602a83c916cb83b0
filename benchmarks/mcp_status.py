"""Issue 8: an MCP ``gpu_mode_status`` call on a warm server, observation included (target <= 150 ms).

The converged sim pod of ``specs/`` (``simpod.py``); ``gpumod mcp DIR`` launched as an MCP
client launches it (a stdio subprocess, FastMCP's client), warmed up with a few calls, then
``--repeat`` calls timed from the client's side: the JSON-RPC round trip, a fresh read of the
specs, one observation of the pod and its plan. Baselines of the same run: the same status as a
whole process (``gpumod status -o json``, what an agent without MCP would run), the operation
itself in this process (``gpumod.ops.status``), and a bare observation of the pod (one agent
round trip, no specs, no plan).

Printed, never asserted.    .venv/bin/python benchmarks/mcp_status.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from simpod import gpumod_argv, median_wall, sim_pod

TARGET_MS = 150.0


async def timed(call: Callable[[], Awaitable[object]], repeat: int, warm: int = 3) -> list[float]:
    for _ in range(warm):
        await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def line(name: str, ms: list[float], note: str = "") -> str:
    p90 = sorted(ms)[max(0, round(len(ms) * 0.9) - 1)]
    return f"  {name:<44} median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms{note}"


async def measure(specs: str, env: dict[str, str], repeat: int) -> None:
    os.environ["GPUMOD_HOME"] = env["GPUMOD_HOME"]  # the in-process baselines see the same pod
    from gpumod.ops.snapshot import observe_fleet, select_pods
    from gpumod.ops.status import status
    from gpumod.spec import load_specs
    from gpumod.wiring import Fleet

    argv = gpumod_argv()
    transport = StdioTransport(command=argv[0], args=[*argv[1:], "mcp", specs], env=env, keep_alive=False)
    async with Client(transport, timeout=60) as client:

        async def mcp_call() -> None:
            result = await client.call_tool("gpu_mode_status", {})
            assert result.structured_content["pods"]["sim-box"]["reachable"]

        mcp_ms = await timed(mcp_call, repeat)

    async def in_process() -> None:
        await status(specs)

    pods = select_pods(load_specs(specs), None)

    async def bare_observe() -> None:
        async with Fleet(pods) as fleet:
            await observe_fleet(fleet)

    ops_ms = await timed(in_process, repeat)
    observe_ms = await timed(bare_observe, repeat)
    process_ms = median_wall([*argv, "status", specs, "-o", "json"], env, max(5, repeat // 4)) * 1000

    verdict = "met" if statistics.median(mcp_ms) <= TARGET_MS else "MISSED"
    print(f"MCP gpu_mode_status on a warm stdio server, {repeat} calls (target <= {TARGET_MS:.0f} ms: {verdict})")
    print(line("gpu_mode_status over MCP (stdio)", mcp_ms))
    print("baselines, same run:")
    print(f"  {'gpumod status -o json (whole process)':<44} median {process_ms:7.1f} ms")
    print(line("gpumod.ops.status in this process", ops_ms))
    print(line("bare observation of the pod (no specs/plan)", observe_ms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with sim_pod("code") as pod:
        asyncio.run(measure(str(pod.specs), pod.env, args.repeat))


if __name__ == "__main__":
    main()
