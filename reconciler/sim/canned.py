"""Canned OpenAI-shaped answers of the sim servers (chat, completions, embeddings).

The sim servers do no inference, but clients (health gates, ``gpumod prompt``, a gateway, tests)
must get answers of the real shape: ids, ``choices``, ``usage``, SSE chunks ending in
``data: [DONE]``. Pure functions of the request; no model, no randomness.

Tool calls, deterministic (so an agent's tool loop can be tested): when the request offers
``tools`` and the last message is the user's and names one of them (``use ls``, ``using read``,
``call glob``; "list files" means ``ls``), the answer is a call of that tool. Its required string
arguments get the first `backticked` word of the message (or ``.`` for a path, ``*`` for a
pattern). After a ``tool`` message the answer sums the result up, quoting its first line. With
``reasoning`` (a vLLM started with ``--reasoning-parser``) a short ``reasoning_content`` comes
first.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["chat_completion", "chat_stream", "completion", "embeddings", "reply_text", "tool_call_for"]


def reply_text(flavour: str, model: str) -> str:
    return f"Hello from the gpumod simulated {flavour} server ({model})."


def _prompt_tokens(body: dict[str, Any]) -> int:
    text = json.dumps(body.get("messages") or body.get("prompt") or body.get("input") or "")
    return max(1, len(text) // 4)


def _id(prefix: str, body: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return f"{prefix}-{digest[:24]}"


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


_ASKS = re.compile(r"\b(?:use|using|call|with)\s+(?:the\s+)?`?([A-Za-z_][\w-]*)`?", re.IGNORECASE)
_TICKED = re.compile(r"`([^`]+)`")


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def tool_call_for(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool call the sim answers with (``{"id", "name", "arguments"}``), or None."""
    tools = [t.get("function", {}) for t in body.get("tools") or [] if isinstance(t, dict)]
    messages = body.get("messages") or []
    if not tools or not messages or messages[-1].get("role") != "user":
        return None
    text = _text(messages[-1].get("content"))
    by_name = {str(t.get("name")): t for t in tools}
    wanted = [m.group(1) for m in _ASKS.finditer(text) if m.group(1) in by_name]
    if not wanted and "list files" in text.lower():
        wanted = [n for n in ("ls", "list") if n in by_name]
    if not wanted:
        return None
    tool = by_name[wanted[0]]
    params = tool.get("parameters") or {}
    ticked = _TICKED.findall(text)
    args: dict[str, Any] = {}
    for key in params.get("required") or []:
        if ticked:
            args[key] = ticked[0]
        elif "path" in key or "dir" in key:
            args[key] = "."
        elif "pattern" in key:
            args[key] = "*"
        else:
            args[key] = ""
    call_id = (
        "chatcmpl-tool-" + hashlib.sha1(json.dumps([len(messages), tool.get("name"), args]).encode()).hexdigest()[:16]
    )
    return {"id": call_id, "name": tool["name"], "arguments": json.dumps(args)}


def answer_text(flavour: str, model: str, body: dict[str, Any]) -> str:
    """The text answer: a summary of the last tool result, or the greeting."""
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        result = _text(messages[-1].get("content")).strip()
        lines = result.splitlines()
        first = lines[0] if lines else "(nothing)"
        return f"The tool returned {len(lines)} line(s); the first is: {first}"
    return reply_text(flavour, model)


def reasoning_text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    last = messages[-1].get("role") if messages else "nobody"
    return f"The last message is from the {last}; I answer it."


def chat_completion(flavour: str, model: str, body: dict[str, Any], *, reasoning: bool = False) -> dict[str, Any]:
    call = tool_call_for(body)
    text = answer_text(flavour, model, body)
    message: dict[str, Any] = {"role": "assistant", "content": text, "tool_calls": []}
    if call is not None:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        }
    if reasoning:
        message["reasoning_content"] = reasoning_text(body)
    return {
        "id": _id("chatcmpl", body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if call is not None else "stop",
            }
        ],
        "usage": _usage(_prompt_tokens(body), len(text.split())),
    }


def chat_stream(flavour: str, model: str, body: dict[str, Any], *, reasoning: bool = False) -> Iterator[bytes]:
    """SSE frames of a streamed chat completion: role, (reasoning,) one word per chunk or a
    tool call in two chunks (name, then arguments), the finish reason, [DONE]."""
    cid, created = _id("chatcmpl", body), int(time.time())

    def frame(delta: dict[str, Any], finish: str | None) -> bytes:
        chunk = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    yield frame({"role": "assistant", "content": ""}, None)
    if reasoning:
        for i, word in enumerate(reasoning_text(body).split(" ")):
            yield frame({"reasoning_content": word if i == 0 else " " + word}, None)
    call = tool_call_for(body)
    if call is not None:
        head = {"index": 0, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
        yield frame({"tool_calls": [head]}, None)
        yield frame({"tool_calls": [{"index": 0, "function": {"arguments": call["arguments"]}}]}, None)
        yield frame({}, "tool_calls")
        yield b"data: [DONE]\n\n"
        return
    words = answer_text(flavour, model, body).split(" ")
    for i, word in enumerate(words):
        yield frame({"content": word if i == 0 else " " + word}, None)
    yield frame({}, "stop")
    yield b"data: [DONE]\n\n"


def completion(flavour: str, model: str, body: dict[str, Any]) -> dict[str, Any]:
    text = reply_text(flavour, model)
    return {
        "id": _id("cmpl", body),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(_prompt_tokens(body), len(text.split())),
    }


def _vector(text: str, dims: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b / 255.0 - 0.5 for b in digest[:dims]]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return [round(x / norm, 6) for x in raw]


def embeddings(model: str, body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input", "")
    items = inputs if isinstance(inputs, list) else [inputs]
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _vector(str(item))}
            for i, item in enumerate(items)
        ],
        "model": model,
        "usage": {"prompt_tokens": _prompt_tokens(body), "total_tokens": _prompt_tokens(body)},
    }
