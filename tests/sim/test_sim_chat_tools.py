"""The sim vLLM answers the real `openai` SDK with tool calls and reasoning, deterministically."""

from __future__ import annotations

import json

import openai
import pytest

LS = {
    "type": "function",
    "function": {"name": "ls", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}},
}
READ = {
    "type": "function",
    "function": {
        "name": "read",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}


@pytest.fixture
def client(start_server):
    def make(*extra: str, tools: bool = True) -> openai.OpenAI:
        flags = ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"] if tools else []
        srv = start_server(
            "vllm", ["serve", "Qwen/Qwen3-8B", "--host", "127.0.0.1", "--gpu-memory-utilization", "0.2", *flags, *extra]
        )
        assert srv.wait_status("/health", 200)
        return openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="EMPTY", max_retries=0)

    return make


def test_a_request_naming_a_tool_is_answered_with_that_call_streamed(client) -> None:
    api = client()
    chunks = list(
        api.chat.completions.create(
            model="Qwen/Qwen3-8B", stream=True, tools=[LS, READ],
            messages=[{"role": "user", "content": "please use read on `notes.md`"}],
        )
    )
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "read" and calls[0].id
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"path": "notes.md"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_after_a_tool_result_it_sums_it_up_and_without_tools_it_greets(client) -> None:
    api = client()
    done = api.chat.completions.create(
        model="Qwen/Qwen3-8B",
        tools=[LS],
        messages=[
            {"role": "user", "content": "list files"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "alpha.txt\nbeta.py"},
        ],
    )
    assert done.choices[0].message.content == "The tool returned 2 line(s); the first is: alpha.txt"
    plain = api.chat.completions.create(model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "use ls"}])
    assert plain.choices[0].message.content.startswith("Hello from the gpumod simulated vllm server")
    assert plain.choices[0].message.tool_calls == []


def test_a_reasoning_parser_adds_reasoning_content(client) -> None:
    api = client("--reasoning-parser", "qwen3")
    chunks = list(
        api.chat.completions.create(model="Qwen/Qwen3-8B", stream=True, messages=[{"role": "user", "content": "hi"}])
    )
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert reasoning == "The last message is from the user; I answer it."


def test_tools_without_the_auto_tool_choice_flags_get_vllms_400(client) -> None:
    api = client(tools=False)
    with pytest.raises(openai.BadRequestError) as refused:
        api.chat.completions.create(model="Qwen/Qwen3-8B", tools=[LS], messages=[{"role": "user", "content": "use ls"}])
    assert "--enable-auto-tool-choice and --tool-call-parser" in str(refused.value)
    plain = api.chat.completions.create(model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "hi"}])
    assert plain.choices[0].message.content  # without tools it answers


def test_gpt_oss_calls_tools_without_the_flags_as_vllms_harmony_path_does(start_server) -> None:
    srv = start_server("vllm", ["serve", "openai/gpt-oss-20b", "--host", "127.0.0.1",
                                "--gpu-memory-utilization", "0.2"])
    assert srv.wait_status("/health", 200)
    api = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="EMPTY", max_retries=0)
    done = api.chat.completions.create(model="openai/gpt-oss-20b", tools=[LS],
                                       messages=[{"role": "user", "content": "use ls"}])
    assert done.choices[0].message.tool_calls[0].function.name == "ls"
