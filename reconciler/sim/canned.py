"""Canned OpenAI-shaped answers of the sim servers (chat, completions, embeddings).

The sim servers do no inference, but clients (health gates, ``gpumod prompt``, a gateway, tests)
must get answers of the real shape: ids, ``choices``, ``usage``, SSE chunks ending in
``data: [DONE]``. Pure functions of the request; no model, no randomness.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["chat_completion", "chat_stream", "completion", "embeddings", "reply_text"]


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


def chat_completion(flavour: str, model: str, body: dict[str, Any]) -> dict[str, Any]:
    text = reply_text(flavour, model)
    return {
        "id": _id("chatcmpl", body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(_prompt_tokens(body), len(text.split())),
    }


def chat_stream(flavour: str, model: str, body: dict[str, Any]) -> Iterator[bytes]:
    """SSE frames of a streamed chat completion: role, one word per chunk, stop, [DONE]."""
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
    words = reply_text(flavour, model).split(" ")
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
