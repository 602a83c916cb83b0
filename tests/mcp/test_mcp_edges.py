"""The MCP server as a new client meets it over stdio: odd arguments (lines 0 or below, an empty
model, unknown names) come back as tool errors with gpumod's own text, never an answer made of
the wrong thing, and the server names itself with gpumod's version (not its MCP library's)."""

from __future__ import annotations

import pytest
from mcp_helpers import refusal, spec_bytes
from test_stdio import stdio_client

from gpumod import __version__

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_odd_arguments_are_tool_errors_with_gpumods_text(sim) -> None:
    before = spec_bytes(sim.specs)
    async with stdio_client(sim) as c:
        assert c.server_info.version == __version__
        for lines in (0, -1):  # the CLI's --lines refuses these; the tool must not answer "the whole log"
            text = await refusal(c, "service_logs", service="chat", lines=lines)
            assert f"lines must be 1 or more, got {lines}" in text
        text = await refusal(c, "model_info", model="  ", hub=False)
        assert text.startswith("error: no model given") and "Qwen/" in text
        text = await refusal(c, "model_info", model="qwen3-embeding-0.6b", hub=False)
        assert "did you mean qwen3-embedding-0.6b" in text
        assert "unknown pod(s): nope" in await refusal(c, "plan", pod="nope")
        assert "mode 'nope' is not defined" in await refusal(c, "gpu_mode_verify", mode="nope")
        assert "no service named nope" in await refusal(c, "service_status", service="nope")
    assert spec_bytes(sim.specs) == before


async def test_an_unreachable_pod_is_named_once_in_each_tools_answer(tmp_path, monkeypatch) -> None:
    """A fleet whose SSH pods do not answer (loopback ports nobody listens on): plan, verify and
    apply say so promptly, naming each pod once per line (not `pod x ...: pod x: ...`)."""

    from e2e_helpers import unreachable_copy
    from fastmcp import Client

    from gpumod.mcp.server import build_server

    monkeypatch.setenv("GPUMOD_HOME", str(tmp_path / "home"))
    specs = unreachable_copy("ssh-fleet", tmp_path / "fleet")
    async with Client(build_server(specs, allow_apply=True), timeout=60) as c:
        plan = (await c.call_tool("plan", {})).structured_content
        assert plan["changes"] == 0 and set(plan["unreachable"]) == {"rented-h100", "workstation"}
        verify = (await c.call_tool("gpu_mode_verify", {"pod": "workstation"})).structured_content
        (reason,) = verify["pods"]["workstation"]["reasons"]
        assert reason.startswith("pod workstation cannot be observed: ") and reason.count("workstation") == 1
        applied = (await c.call_tool("apply", {"pod": "workstation"})).structured_content
        (problem,) = applied["problems"]
        assert applied["converged"] is False
        assert problem.startswith("pod workstation was not reconciled: ") and problem.count("workstation") == 1
        text = await refusal(c, "service_logs", service="coder", pod="workstation")
        assert "hint: unreachable: workstation (cannot reach " in text and text.count("workstation") == 1
