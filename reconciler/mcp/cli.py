"""The ``gpumod mcp DIR`` command: serve the MCP server over stdio, or streamable HTTP with a token.

Why a module of its own: the command's options (transport, port, token, ``--allow-apply``) and
its start-up errors are a face's concern; the tools live in ``gpumod.mcp.server``. ``fastmcp``
is imported only when the command runs. Over stdio, stdout is the protocol: every line gpumod
or FastMCP writes for a person goes to stderr. Over HTTP the server listens on 127.0.0.1 only
and every request must carry ``Authorization: Bearer TOKEN`` (401 otherwise).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from gpumod.errors import GpumodError

if TYPE_CHECKING:
    import socket

__all__ = ["HOST", "mcp", "register"]

HOST = "127.0.0.1"


def register(app: typer.Typer) -> None:
    """Add ``mcp`` to the gpumod app."""
    app.command()(mcp)


def mcp(
    directory: Path = typer.Argument(..., help="spec directory (or one YAML file)", show_default=False),
    allow_apply: bool = typer.Option(
        False, "--allow-apply", help="let agents change pods (gpu_mode_switch, apply); refused otherwise"
    ),
    http: bool = typer.Option(False, "--http", help="serve streamable HTTP on 127.0.0.1 instead of stdio"),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="the HTTP port (with --http)"),
    token_env: Optional[str] = typer.Option(
        None, "--token-env", help="read the bearer token from this environment variable (with --http); "
        "default: a new token, printed to stderr once", show_default=False,
    ),
) -> None:
    """Serve the operations to AI agents over MCP (stdio; --http: streamable HTTP with a bearer token)."""
    from gpumod.chat.cli import fail  # one way to print a start-up error: red line, hint, exit 2

    try:
        if not directory.exists():
            raise GpumodError(f"no spec directory {directory}", hint="pass the spec directory: gpumod mcp DIR")
        if not http:
            if token_env is not None:
                raise GpumodError("--token-env is for --http; a stdio server is reached only by its parent process")
            _serve_stdio(directory, allow_apply)
        else:
            _serve_http(directory, allow_apply, port, _token(token_env))
    except GpumodError as e:
        fail(e)
    except KeyboardInterrupt:
        pass


def _serve_stdio(directory: Path, allow_apply: bool) -> None:
    from gpumod.mcp.server import build_server

    build_server(directory, allow_apply=allow_apply).run("stdio", show_banner=False, log_level="warning")


def _token(env_name: str | None) -> str | None:
    """The token from ``env_name``; None: make one (printed once the port is bound)."""
    if env_name is None:
        return None
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise GpumodError(
            f"--token-env {env_name}: the environment variable {env_name} is not set or empty",
            hint=f"export {env_name}=<a long random token>, or leave out --token-env to get one made",
        )
    return value


def _serve_http(directory: Path, allow_apply: bool, port: int, token: str | None) -> None:
    import hmac
    import secrets

    from fastmcp.server.auth.providers.debug import DebugTokenVerifier

    from gpumod.mcp.server import build_server

    sock = _bind(port)
    made = token is None
    secret = token or secrets.token_urlsafe(32)
    auth = DebugTokenVerifier(validate=lambda given: hmac.compare_digest(given.encode(), secret.encode()))
    server = build_server(directory, allow_apply=allow_apply, auth=auth)
    url = f"http://{HOST}:{port}/mcp"
    typer.echo(f"gpumod mcp: serving {directory} at {url}" + (" (--allow-apply)" if allow_apply else ""), err=True)
    if made:
        typer.echo(f"gpumod mcp: bearer token (send `Authorization: Bearer TOKEN`): {secret}", err=True)
    server.run("http", show_banner=False, host=HOST, port=port, path="/mcp", sockets=[sock], log_level="warning")


def _bind(port: int) -> socket.socket:
    """Bind 127.0.0.1:port now, so a port in use is one clear error before anything starts."""
    import errno
    import socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as e:
        sock.close()
        why = "is in use" if e.errno == errno.EADDRINUSE else f"cannot be bound: {e.strerror or e}"
        raise GpumodError(f"port {port} on {HOST} {why}", hint="pick another with --port N") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
