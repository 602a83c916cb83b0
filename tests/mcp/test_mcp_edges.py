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
