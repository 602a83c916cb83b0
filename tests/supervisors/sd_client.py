"""How the supervisor tests reach ``sd_server.py``: its path (to launch it as a unit) and a GET
that bypasses any proxy, so each test module does not carry its own copy."""

from __future__ import annotations

import urllib.request
from pathlib import Path

SERVER = Path(__file__).with_name("sd_server.py")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(port: int, path: str) -> str:
    """GET http://127.0.0.1:PORT/PATH from the server; its body."""
    with NO_PROXY.open(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
        return resp.read().decode()


def listening(port: int) -> bool:
    """The server on PORT answers /health."""
    try:
        return get(port, "/health") == "ok"
    except OSError:
        return False
