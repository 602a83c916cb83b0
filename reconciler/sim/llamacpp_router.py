"""llama.cpp router mode in the sim server: ``llama-server --models-dir DIR`` (no ``-m``).

The router holds only a residual (``GPUMOD_SIM_SLEEP_MB``, default 300 MiB). ``POST /models/load``
answers ``{"success": true}`` at once and loads in the background over ``GPUMOD_SIM_LOAD_S``
(``/models`` shows ``loading`` then ``loaded``; a load that does not fit ends ``unloaded`` with
``failed: true, exit_code: 1``); ``--models-max`` evicts the least recently used model first;
``POST /models/unload`` frees back to the residual (400 ``model is not running`` otherwise).
``/models`` lists the ``*.gguf`` of the models dir plus every model ever asked for. Real
llama.cpp runs a child process per model; here the router process holds it all, which is what
gpumod accounts per service anyway.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpumod.sim.gpu import OutOfSimMemory
from gpumod.sim.llamacpp_flavour import (
    HEALTHY,
    INFERENCE,
    NOT_FOUND,
    ROUTER_RESIDUAL_MB,
    SUCCESS,
    LlamaBase,
    invalid_request,
    oom_lines,
)
from gpumod.sim.runtime import Reply, Request, Settings, json_reply

__all__ = ["LlamaRouter"]


@dataclass
class _Model:
    id: str
    path: str
    status: str = "unloaded"  # unloaded | loading | loaded
    failed: bool = False
    last_used: float = 0.0


class LlamaRouter(LlamaBase):
    """``llama-server --models-dir DIR``: loads and unloads models on request."""

    def __init__(self, flags: dict[str, Any], settings: Settings) -> None:
        super().__init__(flags, settings)
        self.models_dir = Path(str(flags["models_dir"])).expanduser()
        self.models_max = int(flags.get("models_max", 4))
        self.autoload = bool(flags.get("autoload", True))
        self.residual = settings.sleep_mb if settings.sleep_mb is not None else ROUTER_RESIDUAL_MB
        self.models: dict[str, _Model] = {}
        self._lock = threading.RLock()

    def lifecycle(self) -> int:
        self.pick_devices()
        try:
            self.hold(self.per_gpu(self.residual))
        except OutOfSimMemory as e:
            self.error(
                *oom_lines(e.requested_mb, self.devices.index(e.gpu), "router")[:2],
                "main: exiting due to router start error",
            )
            return 1
        if not self.listen():
            return 1
        self.log(
            "INFO",
            f"router: {len(self._scan())} model(s) in {self.models_dir}, "
            f"models_max={self.models_max}, autoload={self.autoload}",
        )
        if self.settings.fail == "start":
            self.pause(self.settings.load_s)
            self.error("main: exiting due to router start error (GPUMOD_SIM_FAIL=start)")
            return 1
        self.wait_forever()
        return 0

    # ---- catalogue --------------------------------------------------------------------------

    def _scan(self) -> dict[str, _Model]:
        with self._lock:
            if self.models_dir.is_dir():
                for path in sorted(self.models_dir.iterdir()):
                    if path.suffix == ".gguf" and path.is_file():
                        self.models.setdefault(path.stem, _Model(path.stem, str(path)))
                    elif path.is_dir() and any(path.glob("*.gguf")):
                        self.models.setdefault(path.name, _Model(path.name, str(path)))
            return self.models

    def _entry(self, model_id: str) -> _Model:
        with self._lock:
            entry = self._scan().get(model_id)
            if entry is None:
                path = self.models_dir / f"{model_id}.gguf"
                entry = self.models[model_id] = _Model(model_id, str(path))
            return entry

    def _card(self, m: _Model) -> dict[str, Any]:
        status: dict[str, Any] = {"value": m.status, "args": []}
        if m.failed:
            status |= {"failed": True, "exit_code": 1}
        return {
            "id": m.id,
            "path": m.path,
            "object": "model",
            "owned_by": "llamacpp",
            "created": self.created,
            "status": status,
        }

    def _vram(self) -> dict[int, int]:
        # GPUMOD_SIM_VRAM_MB is the whole awake footprint (router + its model), as gpumod budgets it
        loaded = sum(1 for m in self.models.values() if m.status in ("loading", "loaded"))
        return self.per_gpu(self.residual + loaded * max(0, self.footprint - self.residual))

    # ---- load / unload ----------------------------------------------------------------------

    def load(self, model_id: str) -> None:
        with self._lock:
            entry = self._entry(model_id)
            if entry.status in ("loading", "loaded"):
                return
            if self.models_max > 0:  # LRU eviction makes room first
                loaded = sorted(
                    (m for m in self.models.values() if m.status == "loaded"),
                    key=lambda m: m.last_used,
                )
                for victim in loaded[: max(0, len(loaded) - self.models_max + 1)]:
                    victim.status = "unloaded"
                    self.log("INFO", f"router: evicting {victim.id} (models_max={self.models_max})")
                self.hold(self._vram())  # frees the evicted models
            entry.status, entry.failed = "loading", False
        self.log("INFO", f"router: loading {model_id}")
        threading.Thread(target=self._load, args=(entry,), daemon=True).start()

    def _load(self, entry: _Model) -> None:
        self.pause(self.settings.load_s)
        with self._lock:
            if entry.status != "loading":
                return  # unloaded meanwhile
            try:
                if self.settings.fail == "load":
                    raise OutOfSimMemory(
                        self.devices[0] if self.devices else 0, 0, 0, self.footprint
                    )
                self.hold(self._vram())
            except OutOfSimMemory as e:
                entry.status, entry.failed = "unloaded", True
                self.log(
                    "ERROR",
                    f"router: {entry.id} failed to load: cudaMalloc failed: out of "
                    f"memory ({e.requested_mb} MiB)",
                )
                return
            entry.status, entry.last_used = "loaded", time.monotonic()
        self.log("INFO", f"router: {entry.id} loaded")

    def unload(self, model_id: str) -> Reply:
        with self._lock:
            entry = self.models.get(model_id)
            if entry is None or entry.status not in ("loading", "loaded"):
                return invalid_request("model is not running")
        self.pause(self.settings.sleep_s)
        with self._lock:
            entry.status = "unloaded"
            self.hold(self._vram())
        self.log("INFO", f"router: {model_id} unloaded")
        return SUCCESS

    # ---- HTTP -------------------------------------------------------------------------------

    def handle(self, req: Request) -> Reply:
        if req.path in ("/health", "/v1/health"):
            return HEALTHY
        if req.path in ("/models", "/v1/models") and req.method == "GET":
            with self._lock:
                cards = [self._card(m) for _, m in sorted(self._scan().items())]
            return json_reply(200, {"data": cards, "object": "list"})
        if req.path in ("/models/load", "/models/unload") and req.method == "POST":
            model_id = req.json().get("model")
            if not isinstance(model_id, str) or not model_id:
                return invalid_request('"model" is required')
            if req.path == "/models/unload":
                return self.unload(model_id)
            self.load(model_id)
            return SUCCESS
        if req.path == "/props":
            return json_reply(
                200,
                {
                    "role": "router",
                    "max_instances": self.models_max,
                    "models_autoload": self.autoload,
                    "model_path": "none",
                },
            )
        if req.path == "/metrics":
            return self.metrics()
        if req.path in INFERENCE and req.method == "POST":
            return self._route(req)
        return NOT_FOUND

    def _route(self, req: Request) -> Reply:
        model_id = req.json().get("model")
        if not isinstance(model_id, str) or not model_id:
            return invalid_request("model name is missing from the request")
        entry = self._entry(model_id)
        if entry.status != "loaded":
            autoload = req.arg("autoload", "true" if self.autoload else "false") == "true"
            if not autoload:
                return invalid_request("model is not loaded")
            self.load(model_id)
            deadline = time.monotonic() + self.settings.load_s + 30
            while entry.status == "loading" and time.monotonic() < deadline:
                time.sleep(0.02)
            if entry.status != "loaded":
                return json_reply(
                    500,
                    {
                        "error": {
                            "code": 500,
                            "type": "server_error",
                            "message": f"model {model_id} failed to load",
                        }
                    },
                )
        entry.last_used = time.monotonic()
        return self.chat(model_id, req)
