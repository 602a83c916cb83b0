"""What every sim inference server shares: settings, flags, HTTP plumbing, VRAM, shutdown.

The vLLM, llama.cpp and plain sim servers differ in their HTTP API and in *when* they listen and
allocate; everything else lives here: reading ``GPUMOD_SIM_*`` and ``CUDA_VISIBLE_DEVICES``,
picking the few real flags they need out of a real server argv, a stdlib threaded HTTP server
(fast to import and bind), holding VRAM on the sim GPUs, a log line per request and lifecycle
event, and SIGTERM handling that frees the VRAM and exits 0 at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gpumod.sim.gpu import SimGpu, SimGpus

__all__ = [
    "ShuttingDown",
    "Reply",
    "Request",
    "Settings",
    "SimServer",
    "Terminate",
    "json_reply",
    "pick_flags",
]


class Terminate(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT: unwind, free the VRAM, exit 0."""


class ShuttingDown(Exception):
    """A request tried to change the VRAM held after shutdown began."""


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    return float(raw) if raw else default


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    return int(float(raw)) if raw else None


@dataclass(frozen=True)
class Settings:
    """The simulation knobs, read from the environment of the server process."""

    sim_dir: str | None = None
    visible: str | None = None  # CUDA_VISIBLE_DEVICES as given (None = unset)
    vram_mb: int | None = None  # MiB per GPU when awake/loaded
    sleep_mb: int | None = None  # MiB per GPU kept while asleep/unloaded
    load_s: float = 0.5
    sleep_s: float = 0.2
    wake_s: float = 0.2
    fail: str = ""  # "start": crash while loading; "load": router model loads fail
    dev_mode: bool = False  # VLLM_SERVER_DEV_MODE=1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            sim_dir=env.get("GPUMOD_SIM_DIR") or None,
            visible=env.get("CUDA_VISIBLE_DEVICES"),
            vram_mb=_env_int(env, "GPUMOD_SIM_VRAM_MB"),
            sleep_mb=_env_int(env, "GPUMOD_SIM_SLEEP_MB"),
            load_s=_env_float(env, "GPUMOD_SIM_LOAD_S", 0.5),
            sleep_s=_env_float(env, "GPUMOD_SIM_SLEEP_S", 0.2),
            wake_s=_env_float(env, "GPUMOD_SIM_WAKE_S", 0.2),
            fail=env.get("GPUMOD_SIM_FAIL", "").strip().lower(),
            dev_mode=env.get("VLLM_SERVER_DEV_MODE", "").strip().lower() in ("1", "true", "yes"),
        )


def pick_flags(
    argv: Iterable[str],
    valued: Mapping[str, str],
    switches: Mapping[str, tuple[str, Any]] | None = None,
) -> dict[str, Any]:
    """The known flags of a real server argv (``--f v``, ``--f=v``, switches); the rest ignored.

    Not argparse: its short-option clustering would read llama.cpp's ``-ctk q8_0`` as
    ``-c tk`` and ``-mg 1`` as ``-m g``. Only exact flag names match here; the last one wins.
    """
    switches = switches or {}
    out: dict[str, Any] = {}
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        name, eq, value = tokens[i].partition("=")
        if name in valued and name.startswith("--") and eq:
            out[valued[name]] = value
        elif tokens[i] in valued and i + 1 < len(tokens):
            out[valued[tokens[i]]] = tokens[i + 1]
            i += 1
        elif tokens[i] in switches:
            key, val = switches[tokens[i]]
            out[key] = val
        i += 1
    return out


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    client: str = "127.0.0.1:0"
    authorization: str = ""  # the Authorization header, as sent

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        data = json.loads(self.body)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    stream: Iterable[bytes] | None = None  # SSE: sent after the headers, then the connection closes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, obj: Any) -> Reply:
    return Reply(status, json.dumps(obj).encode(), "application/json")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a DNS lookup that can take seconds: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: SimServer  # set on the subclass made in SimServer.bind

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        client = f"{self.client_address[0]}:{self.client_address[1]}"
        auth = self.headers.get("Authorization") or ""
        req = Request(self.command, url.path, parse_qs(url.query), body, client, auth)
        try:
            reply = self.app.refused(req) or self.app.handle(req)
        except ValueError as e:  # a body that is not the JSON object the endpoint needs
            reply = json_reply(400, {"error": {"code": 400, "message": f"invalid request: {e}"}})
        except Exception:  # a sim bug must show, not hang the client
            self.app.log("ERROR", "request failed:\n" + traceback.format_exc().rstrip())
            reply = json_reply(500, {"error": {"code": 500, "message": "Internal Server Error"}})
        self.app.access_log(req, reply.status)
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        if reply.stream is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            return
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for chunk in reply.stream:
            self.wfile.write(chunk)
            self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # SimServer.access_log writes one line per request instead


class SimServer:
    """Base of the sim servers: subclasses implement ``lifecycle`` (main thread) and ``handle``."""

    flavour = "sim"
    server_header = "uvicorn"
    # API key, as the real servers take it from their environment (vLLM VLLM_API_KEY, llama-server
    # LLAMA_API_KEY): every path but the public ones answers 401 without ``Bearer KEY``
    api_key_env = "GPUMOD_API_KEY"
    public_paths: tuple[str, ...] = ("/health",)
    unauthorized: Any = {"error": "Unauthorized"}

    def __init__(self, settings: Settings, host: str, port: int, process_name: str) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.process_name = process_name
        self.pid = os.getpid()
        self.store = SimGpus(settings.sim_dir) if settings.sim_dir else None
        self.devices: list[int] = []
        self._vram_lock = threading.Lock()
        self._holding = False
        self._terminating = False
        self._httpd: _HttpServer | None = None
        self.api_key = os.environ.get(self.api_key_env) or None

    def refused(self, req: Request) -> Reply | None:
        """401 for a request without the API key (None: let it through)."""
        if self.api_key is None or req.path in self.public_paths:
            return None
        if req.authorization == f"Bearer {self.api_key}":
            return None
        return json_reply(401, self.unauthorized)

    # ---- to implement -----------------------------------------------------------------------

    def lifecycle(self) -> int:
        raise NotImplementedError

    def handle(self, req: Request) -> Reply:
        raise NotImplementedError

    # ---- logging ----------------------------------------------------------------------------

    def log(self, level: str, message: str) -> None:
        stamp = time.strftime("%m-%d %H:%M:%S")
        sys.stdout.write(f"{level} {stamp} [sim-{self.flavour}] {message}\n")
        sys.stdout.flush()

    def error(self, *lines: str) -> None:
        """Lines the real server prints on stderr before dying."""
        sys.stderr.write("".join(line + "\n" for line in lines))
        sys.stderr.flush()

    def access_log(self, req: Request, status: int) -> None:
        self.log("INFO", f'{req.client} - "{req.method} {req.path} HTTP/1.1" {status}')

    # ---- GPUs -------------------------------------------------------------------------------

    def visible_gpus(self) -> list[SimGpu]:
        """The sim GPUs CUDA would show this process, in CUDA_VISIBLE_DEVICES order.

        Like CUDA, the list stops at the first entry that names no device; unset = all GPUs.
        """
        if self.store is None or not self.store.exists():
            return []
        gpus = self.store.gpus()
        if self.settings.visible is None:
            return gpus
        by_key = {str(g.index): g for g in gpus} | {g.uuid: g for g in gpus}
        out: list[SimGpu] = []
        for entry in self.settings.visible.split(","):
            gpu = by_key.get(entry.strip())
            if gpu is None or gpu in out:
                break
            out.append(gpu)
        return out

    def hold(self, mb: Mapping[int, int]) -> None:
        """Hold exactly ``mb`` (MiB per GPU index) for this process; OutOfSimMemory if short."""
        if self.store is None or not mb:
            return
        with self._vram_lock:
            if self._terminating:
                raise ShuttingDown("the server is shutting down")
            if self._holding:
                self.store.set(self.pid, mb)
            else:
                self.store.allocate(self.pid, mb, self.process_name)
                self._holding = True

    def release(self) -> None:
        """Free everything this process holds; later ``hold`` calls fail (shutdown)."""
        # A timeout, not a plain ``with``: a signal between acquire and ``try`` could leak the lock.
        locked = self._vram_lock.acquire(timeout=1.0)
        try:
            self._terminating = True
            if self.store is not None and self.store.exists():
                self.store.release(self.pid)
            self._holding = False
        finally:
            if locked:
                self._vram_lock.release()

    # ---- HTTP -------------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen on host:port and serve in background threads; OSError if the port is taken."""
        handler = type("Handler", (_Handler,), {"app": self, "server_version": self.server_header})
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_cls = type("Server", (_HttpServer,), {"address_family": family})
        self._httpd = server_cls((self.host, self.port), handler)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True).start()

    # ---- process ----------------------------------------------------------------------------

    @staticmethod
    def pause(seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    @staticmethod
    def wait_forever() -> None:
        while True:
            time.sleep(3600)

    def run(self) -> int:
        """Run the lifecycle; on SIGTERM/SIGINT free the VRAM and return 0."""

        def on_signal(signum: int, _frame: object) -> None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            raise Terminate(signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            return self.lifecycle()
        except Terminate:
            self.log("INFO", "shutting down (signal), releasing GPU memory")
            return 0
        finally:
            with contextlib.suppress(Terminate):  # a second signal must not skip the release
                self.release()


def run_forever_exit(server: SimServer) -> None:
    """Run ``server`` and leave the process at once with its exit code (no thread joins)."""
    code = server.run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def gib(mb: int | float) -> str:
    return f"{mb / 1024:.2f}"
