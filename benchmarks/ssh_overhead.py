"""P5: per-step overhead of one persistent asyncssh connection vs one `ssh` process per step.

Why: gpumod keeps one asyncssh connection per pod for a whole run; this measures what that buys.
It starts its own private sshd on 127.0.0.1 (tests/infra/sshd.py; needs root and
openssh-server), runs N sequential `true` commands through ``SshTransport`` (after one warm-up
command that opens the connection) and N through ``ssh -i KEY -o UserKnownHostsFile=... -p PORT
root@127.0.0.1 true``, and prints both medians and their ratio (target >= 10x). Informational
only: nothing is asserted and it is not part of the test suite. The sshd is stopped by PID.

    .venv/bin/python benchmarks/ssh_overhead.py [-n 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from infra.sshd import SshServer, sshd_unavailable_reason, start_sshd  # noqa: E402

from gpumod.drivers.transports.ssh import SshTransport  # noqa: E402
from gpumod.spec import parse_host  # noqa: E402

TARGET = 10.0


async def asyncssh_steps(server: SshServer, n: int) -> tuple[float, list[float]]:
    host = parse_host(f"ssh -p {server.port} -i {server.client_key} {server.user}@{server.host}")
    transport = SshTransport(host, pod="bench", known_hosts=server.known_hosts)
    try:
        started = time.perf_counter()
        first = await transport.run(["true"], timeout=30)
        connect = time.perf_counter() - started
        if not first.ok:
            raise SystemExit(f"asyncssh: `true` failed: {first.stderr!r}")
        times = []
        for _ in range(n):
            started = time.perf_counter()
            result = await transport.run(["true"], timeout=30)
            times.append(time.perf_counter() - started)
            if not result.ok:
                raise SystemExit(f"asyncssh: `true` failed: {result.stderr!r}")
        return connect, times
    finally:
        await transport.close()


def cli_steps(server: SshServer, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        result = subprocess.run(server.ssh_argv("true"), capture_output=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"ssh CLI failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="sequential steps per method (default 30)")
    args = parser.parse_args()
    reason = sshd_unavailable_reason()
    if reason:
        print(f"P5 skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="gpumod-p5-") as tmp:
        server = start_sshd(Path(tmp) / "sshd")
        try:
            connect, persistent = asyncio.run(asyncssh_steps(server, args.n))
            cli = cli_steps(server, args.n)
        finally:
            server.stop()
    p_med, c_med = statistics.median(persistent), statistics.median(cli)
    ratio = c_med / p_med
    print(f"P5 ssh overhead, {args.n} sequential `true` steps against a private sshd on 127.0.0.1")
    print(
        f"  asyncssh, one connection : median {p_med * 1000:7.2f} ms/step  "
        f"(connect + first step {connect * 1000:.1f} ms)"
    )
    print(f"  ssh CLI, one per step    : median {c_med * 1000:7.2f} ms/step")
    print(
        f"  ratio                    : {ratio:.1f}x  (target >= {TARGET:g}x: {'met' if ratio >= TARGET else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
