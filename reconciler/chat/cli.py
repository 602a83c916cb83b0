"""The ``gpumod prompt`` command: chat with a service from the command line (pi's agent).

A face only: the endpoint comes from ``gpumod.chat.endpoint``, the loop from
``gpumod.chat.client``, the tools from ``gpumod.chat.tools``; this module reads the options,
prints events as they come (answer text plain, reasoning dimmed, tool calls and results on
their own lines; or one JSON object per line with ``--json``) and maps errors to one red line
and exit 2. Nothing the model says is read as markup. The ``openai`` package is imported here
only, when the command runs. The API key comes from the environment (``OPENAI_API_KEY`` or the
variable ``--api-key-env`` names) or from the service's own API-key secret, never from argv.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.text import Text

from gpumod.cli_base import err, out  # the CLI's consoles: no markup, no emoji codes
from gpumod.errors import GpumodError

__all__ = ["prompt", "register"]

RESULT_LINES = 8  # lines of a tool result shown on the console


def register(app: typer.Typer) -> None:
    """Add ``prompt``, ``ssh`` and ``shell`` to the gpumod app."""
    from gpumod.podshell import shell, ssh

    app.command()(prompt)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(ssh)
    app.command()(shell)


def fail(e: GpumodError) -> None:
    for problem in getattr(e, "problems", ()):
        err.print(str(problem))
    err.print(Text.assemble(("error:", "red"), " ", e.message))
    if e.hint:
        err.print(Text.assemble(("hint:", "yellow"), " ", e.hint))
    raise typer.Exit(2)


def prompt(
    directory: Path = typer.Argument(..., help="spec directory (or one YAML file)", show_default=False),
    service: str = typer.Argument(..., help="the service to chat with", show_default=False),
    message: Optional[List[str]] = typer.Argument(None, help="the message (words are joined)", show_default=False),
    pod: Optional[str] = typer.Option(None, "--pod", "-p", help="the pod, when the service runs on several"),
    interactive: bool = typer.Option(
        False, "--interactive", "-i", help="then read more messages, one per line, until EOF"
    ),
    cont: bool = typer.Option(False, "--continue", "-c", help="continue the last session with this service"),
    as_json: bool = typer.Option(False, "--json", help="one JSON event per line on stdout"),
    allow_bash: bool = typer.Option(
        False, "--allow-bash", help="also give the model a bash tool (runs in this folder)"
    ),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY",
        "--api-key-env",
        help="environment variable holding the service's API key (default: the secret of its "
             "VLLM_API_KEY/LLAMA_API_KEY env)",
    ),
    max_rounds: int = typer.Option(10, "--max-rounds", min=1, help="tool-call rounds per message"),
) -> None:
    """Chat with SERVICE through its OpenAI API, with tools ls/read/glob/rg on this folder."""
    text = " ".join(message or []).strip()
    try:
        if not text and not interactive:
            raise GpumodError("no message", hint='give one: gpumod prompt DIR SERVICE "message" (or -i)')
        asyncio.run(
            _chat(directory, service, pod, text, interactive, cont, as_json, allow_bash, api_key_env, max_rounds)
        )
    except GpumodError as e:
        if as_json:
            print(json.dumps({"type": "error", "message": e.message, "hint": e.hint}), flush=True)
        fail(e)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


async def _chat(
    directory: Path, service: str, pod: Optional[str], text: str, interactive: bool, cont: bool,
    as_json: bool, allow_bash: bool, api_key_env: str, max_rounds: int,
) -> None:
    from gpumod.chat.client import chat_turn, openai_stream, system_prompt
    from gpumod.chat.endpoint import find_target, open_endpoint, service_api_key
    from gpumod.chat.session import Session, last_session
    from gpumod.chat.tools import Toolbox

    try:
        import openai
    except ImportError:
        raise GpumodError("gpumod prompt needs the openai package", hint="pip install openai") from None
    cwd = Path.cwd()
    session = None
    if cont:
        session = last_session(service)
        if session is None:
            raise GpumodError(f"no earlier session with service {service} to continue", hint="drop -c to start one")
    target = find_target(directory, service, pod)
    api_key = os.environ.get(api_key_env) or service_api_key(target)
    emit = _json_event if as_json else ConsolePrinter().event
    async with open_endpoint(target, api_key) as endpoint:
        if session is None:
            session = Session(service=service, model=endpoint.model, cwd=str(cwd))
            session.messages.append({"role": "system", "content": system_prompt(str(cwd))})
        client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=api_key or "EMPTY", max_retries=0)
        stream = openai_stream(client, endpoint.model)
        tools = Toolbox(cwd, allow_bash=allow_bash)

        async def turn(line: str) -> None:
            session.messages.append({"role": "user", "content": line})
            try:
                await chat_turn(session.messages, stream, tools, emit, max_rounds=max_rounds)
            except openai.APIConnectionError as e:
                raise GpumodError(
                    f"lost service {service} at {endpoint.base_url}: {e}", hint="see `gpumod status DIR`"
                ) from None
            except openai.APIStatusError as e:
                message = _api_message(e)
                hint = ""
                if "--enable-auto-tool-choice" in message:
                    hint = (f"prompt offers the model tools; add to service {service}: args: "
                            "{enable-auto-tool-choice: true, tool-call-parser: PARSER} (hermes for Qwen; "
                            "see vLLM's tool calling docs for others), then `gpumod apply`")
                raise GpumodError(f"service {service} answered {e.status_code}: {message}", hint=hint) from None
            finally:
                session.save()

        try:
            if text:
                await turn(text)
            while interactive:
                if sys.stdin.isatty():
                    err.print("> ", end="")
                line = await asyncio.to_thread(sys.stdin.readline)
                if not line:
                    break
                if line.strip():
                    await turn(line.strip())
        finally:
            await client.close()


def _api_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        inner = error if isinstance(error, dict) else body
        return str(inner.get("message") or inner.get("detail") or e)
    return str(getattr(e, "message", e))


def _json_event(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


class ConsolePrinter:
    """Events on the terminal: text as it streams, reasoning dimmed, tools on their own lines."""

    def __init__(self, console: Console = out) -> None:
        self.console = console
        self.at_line_start = True
        self.last = ""

    def _write(self, text: str, style: str = "") -> None:
        self.console.print(Text(text, style=style), end="")
        self.console.file.flush()
        if text:
            self.at_line_start = text.endswith("\n")

    def _newline(self) -> None:
        if not self.at_line_start:
            self._write("\n")

    def event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "reasoning": lambda e: self._text(kind, e["text"], "dim"),
            "content": lambda e: self._text(kind, e["text"]),
            "tool_call": self._tool_call,
            "tool_result": self._tool_result,
            "done": lambda e: self._newline(),
            "error": self._error,
        }
        handlers[kind](event)
        self.last = kind

    def _text(self, kind: str, text: str, style: str = "") -> None:
        self._switch(kind)
        self._write(text, style)

    def _error(self, event: dict[str, Any]) -> None:
        self._newline()
        err.print(Text.assemble(("error:", "red"), " ", event["message"]))

    def _switch(self, kind: str) -> None:
        if self.last and self.last != kind:
            self._newline()

    def _tool_call(self, e: dict[str, Any]) -> None:
        self._newline()
        self._write(f"⚙ {e['name']} {e['arguments']}\n", "cyan")

    def _tool_result(self, e: dict[str, Any]) -> None:
        lines = e["result"].splitlines() or [""]
        shown = lines[:RESULT_LINES] + (
            [f"… {len(lines) - RESULT_LINES} more line(s)"] if len(lines) > RESULT_LINES else []
        )
        style = "red" if e["is_error"] else "dim"
        self._write("".join(f"  {line}\n" for line in shown), style)
