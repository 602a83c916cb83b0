"""Sessions on disk (0700 folder, 0600 files, the newest per service) and the tool loop over recorded chunks."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from gpumod.chat.client import chat_turn
from gpumod.chat.session import Session, last_session, sessions_dir
from gpumod.chat.tools import Toolbox


def test_sessions_are_private_and_the_last_one_per_service_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUMOD_HOME", str(tmp_path / "home"))
    first = Session(service="chat", model="m", cwd="/w", messages=[{"role": "user", "content": "one"}], id="a")
    first.save()
    Session(service="other", model="m", cwd="/w", id="b").save()
    assert stat.S_IMODE(sessions_dir().stat().st_mode) == 0o700
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    again = last_session("chat")
    assert again is not None and again.id == "a" and again.messages == first.messages
    assert last_session("nobody") is None


def chunk(**delta: object) -> dict:
    return {"choices": [{"index": 0, "delta": delta}]}


def test_the_loop_runs_a_streamed_tool_call_then_answers(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x")
    rounds = [
        [
            chunk(reasoning_content="look"),
            chunk(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "ls", "arguments": ""}}]),
            chunk(tool_calls=[{"index": 0, "function": {"arguments": "{}"}}]),
        ],
        [chunk(reasoning="seen"), chunk(content="notes"), chunk(content=".md")],
    ]
    asked: list[list[dict]] = []

    async def stream(messages, tools):
        asked.append([dict(m) for m in messages])
        for c in rounds[len(asked) - 1]:
            yield c

    events: list[dict] = []
    messages = [{"role": "user", "content": "what is here?"}]
    answer = asyncio.run(chat_turn(messages, stream, Toolbox(tmp_path), events.append))
    assert answer == "notes.md"
    assert [e["type"] for e in events] == [
        "reasoning",
        "tool_call",
        "tool_result",
        "reasoning",
        "content",
        "content",
        "done",
    ]
    assert asked[1][-1] == {"role": "tool", "tool_call_id": "c1", "content": "notes.md"}
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
