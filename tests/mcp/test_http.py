"""`gpumod mcp DIR --http --port N`: streamable HTTP on 127.0.0.1 behind a bearer token.

A real server process on a free loopback port: requests without the token, or with a wrong one,
get 401 and reach no tool; FastMCP's client with the token (from --token-env, or the one the
server made and printed to stderr) calls the tools. Start-up errors (no spec directory, a port
in use, an empty token variable) are one line and exit 2."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastmcp import Client
from mcp_helpers import answer, refusal
from testkit import free_port, wait_until

from gpumod.mcp.server import REFUSED

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
HEADERS = {"accept": "application/json, text/event-stream"}


def serve(sim, port: int, log: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpumod.cli", "mcp", str(sim.specs), "--http", "--port", str(port), *flags],
        env=sim.env | (env or {}), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )
    if not wait_until(lambda: proc.poll() is not None or _listening(port), timeout=30) or proc.poll() is not None:
        stop(proc)
        raise AssertionError(f"the server did not start: {log.read_text()}")
    return proc


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_http_requires_the_bearer_token_from_token_env(sim, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    proc = serve(sim, port, tmp_path / "server.log", "--token-env", "MCP_TOKEN", env={"MCP_TOKEN": "s3cret-token"})
    try:
        assert httpx.post(url, json=INIT, headers=HEADERS, timeout=10).status_code == 401
        wrong = HEADERS | {"authorization": "Bearer s3cret-tokeN"}
        assert httpx.post(url, json=INIT, headers=wrong, timeout=10).status_code == 401
        right = HEADERS | {"authorization": "Bearer s3cret-token"}
        assert httpx.post(url, json=INIT, headers=right, timeout=10).status_code == 200

        async with Client(url, auth="s3cret-token", timeout=60) as c:
            status = await answer(c, "gpu_mode_status")
            assert status["pods"]["sim-box"]["mode"] == "code"
            assert REFUSED in await refusal(c, "gpu_mode_switch", mode="rag")
    finally:
        stop(proc)
    assert "s3cret-token" not in (tmp_path / "server.log").read_text()  # a given token is never printed


async def test_without_token_env_the_server_makes_a_token_and_prints_it_once(sim, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    log = tmp_path / "server.log"
    proc = serve(sim, port, log)
    try:
        assert wait_until(lambda: "bearer token" in log.read_text(), timeout=10)
        tokens = re.findall(r"bearer token \(send `Authorization: Bearer TOKEN`\): (\S+)", log.read_text())
        assert len(tokens) == 1 and len(tokens[0]) >= 32
        assert httpx.post(url, json=INIT, headers=HEADERS, timeout=10).status_code == 401
        async with Client(url, auth=tokens[0], timeout=60) as c:
            assert (await answer(c, "service_list"))["services"]
    finally:
        stop(proc)


def test_start_up_errors_are_one_line_and_exit_2(sim, tmp_path: Path) -> None:
    res = sim.run("mcp", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and "no spec directory" in res.stderr and "Traceback" not in res.stderr

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = sim.run("mcp", str(sim.specs), "--http", "--port", str(port))
    assert res.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in res.stderr, res.stderr

    res = subprocess.run(
        [sys.executable, "-m", "gpumod.cli", "mcp", str(sim.specs), "--http", "--token-env", "EMPTY_TOKEN"],
        env=sim.env | {"EMPTY_TOKEN": ""}, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2 and "EMPTY_TOKEN is not set or empty" in res.stderr, res.stderr
