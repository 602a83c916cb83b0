"""Small helpers of the MCP tests: a tool's JSON answer or error text, the spec files' bytes,
and which lines of a file an edit changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastmcp import Client

READ_TOOLS = {
    "gpu_mode_status", "gpu_mode_verify", "simulate_mode", "service_list", "service_status", "service_logs", "plan",
    "model_info",
}
CHANGE_TOOLS = {"gpu_mode_switch", "apply"}


async def answer(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    """A tool's JSON answer (it must not be an error)."""
    result = await client.call_tool(tool, args, raise_on_error=False)
    assert not result.is_error, result.content[0].text
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refusal(client: Client, tool: str, **args: Any) -> str:
    """A tool's error text (it must be an error, and never a traceback)."""
    result = await client.call_tool(tool, args, raise_on_error=False)
    assert result.is_error, result.structured_content
    text = result.content[0].text
    assert "Traceback" not in text
    return text


def spec_bytes(specs: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(specs.glob("*.yaml"))}


def changed_lines(before: bytes, after: bytes) -> list[tuple[str, str]]:
    """(old, new) of every line that differs; the files must have the same number of lines."""
    old, new = before.decode().splitlines(), after.decode().splitlines()
    assert len(old) == len(new), "lines were added or removed"
    return [(a, b) for a, b in zip(old, new) if a != b]
