"""The agent loop of ``gpumod prompt``: stream an answer, run the tools it asks for, repeat.

Pure of I/O except through its two seams: ``stream(messages, tools)`` yields OpenAI chat
completion chunks (the real one wraps ``AsyncOpenAI``; tests may pass recorded chunks), and
``emit(event)`` receives every event as it happens (a dict with ``type``: ``reasoning``,
``content``, ``tool_call``, ``tool_result``, ``done``, ``error``) for the console or JSON faces.
Reasoning is read from ``reasoning_content`` (vLLM) or ``reasoning`` (newer servers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from gpumod.chat.tools import Toolbox

__all__ = ["MAX_ROUNDS", "Event", "chat_turn", "openai_stream", "system_prompt"]

MAX_ROUNDS = 10
Event = dict[str, Any]
Stream = Callable[[list[dict[str, Any]], list[dict[str, Any]]], AsyncIterator[Any]]


def system_prompt(cwd: str) -> str:
    return (
        "You are a helpful assistant with tools to look at files in the user's working folder "
        f"{cwd}. Paths are relative to it. Use the tools to answer; cite files as path:line."
    )


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


async def chat_turn(
    messages: list[dict[str, Any]],
    stream: Stream,
    tools: Toolbox,
    emit: Callable[[Event], None],
    *,
    max_rounds: int = MAX_ROUNDS,
) -> str:
    """Answer the last user message in ``messages`` (appended to in place: the assistant's
    messages and the tool results). Returns the final answer's text."""
    schemas = tools.schemas()
    for _ in range(max_rounds):
        content: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        async for chunk in stream(messages, schemas):
            for choice in _get(chunk, "choices") or []:
                delta = _get(choice, "delta")
                if delta is None:
                    continue
                thought = _get(delta, "reasoning_content") or _get(delta, "reasoning")
                if thought:
                    emit({"type": "reasoning", "text": thought})
                text = _get(delta, "content")
                if text:
                    content.append(text)
                    emit({"type": "content", "text": text})
                for part in _get(delta, "tool_calls") or []:
                    slot = calls.setdefault(_get(part, "index") or 0, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = _get(part, "id") or slot["id"]
                    function = _get(part, "function")
                    if function is not None:
                        slot["name"] += _get(function, "name") or ""
                        slot["arguments"] += _get(function, "arguments") or ""
        answer = "".join(content)
        message: dict[str, Any] = {"role": "assistant", "content": answer or None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": c["id"] or f"call_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for i, c in sorted(calls.items())
            ]
        messages.append(message)
        if not calls:
            emit({"type": "done", "text": answer})
            return answer
        for call in message["tool_calls"]:
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            emit({"type": "tool_call", "id": call["id"], "name": name, "arguments": arguments})
            result, is_error = tools.run(name, arguments)
            emit({"type": "tool_result", "id": call["id"], "name": name, "result": result, "is_error": is_error})
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    emit({"type": "error", "message": f"no final answer after {max_rounds} rounds of tool calls"})
    return ""


def openai_stream(client: Any, model: str, *, max_tokens: int = 2000) -> Stream:
    """The real stream: ``client`` is an ``openai.AsyncOpenAI``."""

    async def stream(messages: list[dict[str, Any]], schemas: list[dict[str, Any]]) -> AsyncIterator[Any]:
        extra: dict[str, Any] = {"tools": schemas, "tool_choice": "auto"} if schemas else {}
        response = await client.chat.completions.create(
            model=model, messages=messages, stream=True, max_tokens=max_tokens, **extra
        )
        async for chunk in response:
            yield chunk

    return stream
