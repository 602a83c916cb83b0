"""`gpumod mcp DIR` as an MCP client launches it: a subprocess speaking MCP on stdin/stdout
(FastMCP's stdio transport). Every tool is called over the pipe against the simulated pod; a
server started without --allow-apply refuses to change it; with it, a switch converges the pod.
A stray line on stdout would break the protocol, so these calls also prove that nothing gpumod
or the services print reaches it."""

from __future__ import annotations

import sys

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from testkit import GIT_ENV, git
from mcp_helpers import CHANGE_TOOLS, READ_TOOLS, answer, changed_lines, refusal, spec_bytes

from gpumod.mcp.server import REFUSED

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POD = "sim-box"


def stdio_client(sim, *flags: str) -> Client:
    transport = StdioTransport(
        command=sys.executable, args=["-m", "gpumod.cli", "mcp", str(sim.specs), *flags], env=sim.env | GIT_ENV,
        keep_alive=False,
    )
    return Client(transport, timeout=120)


async def test_without_allow_apply_the_stdio_server_reads_but_refuses_to_change_pods(sim) -> None:
    before = spec_bytes(sim.specs)
    async with stdio_client(sim) as c:
        assert {t.name for t in await c.list_tools()} == READ_TOOLS | CHANGE_TOOLS
        status = await answer(c, "gpu_mode_status")
        assert status["pods"][POD]["mode"] == "code"
        assert REFUSED in await refusal(c, "gpu_mode_switch", mode="rag")
        assert REFUSED in await refusal(c, "apply")
    assert spec_bytes(sim.specs) == before
    assert sim.records() == []


async def test_every_tool_over_stdio_and_a_committed_switch_that_converges_the_pod(sim) -> None:
    for args in (("init", "-q"), ("add", "."), ("commit", "-q", "-m", "specs")):
        git(sim.specs, *args)
    before = (sim.specs / "pod.yaml").read_bytes()
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with stdio_client(sim, "--allow-apply") as c:
        assert (await answer(c, "gpu_mode_status"))["pods"][POD]["changes_pending"] == 2
        assert (await answer(c, "plan"))["changes"] == 2
        assert (await answer(c, "simulate_mode", mode="everything"))["fits"] is False
        assert [s["name"] for s in (await answer(c, "service_list", pod=POD))["services"]] == [
            "embedding-code", "glm-code",
        ]
        assert (await answer(c, "gpu_mode_verify"))["ok"] is False

        result = await c.call_tool("gpu_mode_switch", {"mode": "rag", "commit": True}, progress_handler=on_progress)
        switch = result.structured_content
        assert switch["apply"]["converged"] is True, switch
        log = git(sim.specs, "log", "--format=%H %s").splitlines()
        assert log[0] == f"{switch['commit']} pod sim-box: mode code -> rag" and len(log) == 2
        assert git(sim.specs, "status", "--porcelain") == ""
        assert changed_lines(before, (sim.specs / "pod.yaml").read_bytes()) == [("mode: code", "mode: rag")]
        assert any(m.startswith(f"{POD}: + start chat") and " … ok (" in m for m in progress), progress

        assert (await answer(c, "gpu_mode_verify", mode="rag"))["ok"] is True
        chat = (await answer(c, "service_status", service="chat"))["services"][0]
        assert (chat["state"], chat["target"]) == ("running", "active")
        assert (await answer(c, "service_logs", service="chat", lines=3))["pods"][POD]["lines"]
        again = await answer(c, "apply", pod=POD)
        assert again["converged"] is True and again["steps"] == []
