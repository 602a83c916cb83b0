"""The llama.cpp flavour of the sim server: ``llama-server``, what its modes share + one model.

Single model (``-m``/``-hf``): listens at once, answers 503 ``Loading model`` until the model is
loaded, then takes its footprint on the visible GPU (dying like llama.cpp with ``cudaMalloc
failed: out of memory`` when short). Without a model it is a router (``llamacpp_router``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from gpumod.sim import canned
from gpumod.sim.gpu import OutOfSimMemory
from gpumod.sim.runtime import Reply, Request, Settings, SimServer, json_reply, pick_flags

__all__ = ["LlamaBase", "LlamaServer", "invalid_request", "make_llamacpp", "oom_lines"]

VALUED = {
    "-m": "model",
    "--model": "model",
    "--host": "host",
    "--port": "port",
    "-c": "ctx",
    "--ctx-size": "ctx",
    "-ngl": "ngl",
    "--n-gpu-layers": "ngl",
    "--gpu-layers": "ngl",
    "-hf": "hf",
    "-hfr": "hf",
    "--hf-repo": "hf",
    "-a": "alias",
    "--alias": "alias",
    "--models-dir": "models_dir",
    "--models-max": "models_max",
}
SWITCHES = {
    "--models-autoload": ("autoload", True),
    "--no-models-autoload": ("autoload", False),
    "--metrics": ("metrics", True),
}
DEFAULT_MB = 1000
ROUTER_RESIDUAL_MB = 300
LOADING = json_reply(
    503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
)
NOT_FOUND = json_reply(
    404, {"error": {"message": "File Not Found", "type": "not_found_error", "code": 404}}
)
HEALTHY = json_reply(200, {"status": "ok"})
SUCCESS = json_reply(200, {"success": True})


def invalid_request(message: str) -> Reply:
    return json_reply(
        400, {"error": {"code": 400, "message": message, "type": "invalid_request_error"}}
    )


def oom_lines(mb: int, gpu: int, model: str) -> tuple[str, ...]:
    return (
        f"ggml_backend_cuda_buffer_type_alloc_buffer: allocating {mb:.2f} MiB on device {gpu}: "
        "cudaMalloc failed: out of memory",
        f"alloc_tensor_range: failed to allocate CUDA{gpu} buffer of size {mb * 1024 * 1024}",
        "llama_model_load: error loading model: unable to allocate CUDA0 buffer",
        "llama_model_load_from_file_impl: failed to load model",
        f"common_init_from_params: failed to load model '{model}'",
        f"srv    load_model: failed to load model, '{model}'",
        "main: exiting due to model loading error",
    )


class LlamaBase(SimServer):
    flavour = "llamacpp"
    server_header = "llama.cpp"
    api_key_env = "LLAMA_API_KEY"
    public_paths = ("/health", "/v1/health")
    unauthorized = {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}

    def __init__(self, flags: dict[str, Any], settings: Settings) -> None:
        super().__init__(
            settings, flags.get("host", "127.0.0.1"), int(flags.get("port", 8080)), "llama-server"
        )
        self.flags = flags
        self.ctx = int(flags.get("ctx", 0))
        self.footprint = settings.vram_mb if settings.vram_mb is not None else DEFAULT_MB
        self.created = int(time.time())

    def access_log(self, req: Request, status: int) -> None:
        self.log(
            "INFO",
            f"srv  log_server_r: request: {req.method} {req.path} "
            f"{req.client.rsplit(':', 1)[0]} {status}",
        )

    def pick_devices(self) -> list[int]:
        """The first visible GPU (llama.cpp with no GPU falls back to the CPU: nothing held)."""
        gpus = self.visible_gpus()[:1]
        if not gpus:
            self.log("WARN", "ggml_cuda_init: no CUDA devices found, running on the CPU")
        self.devices = [g.index for g in gpus]
        return self.devices

    def per_gpu(self, mb: int) -> dict[int, int]:
        return {gpu: mb for gpu in self.devices}

    def listen(self) -> bool:
        try:
            self.bind()
        except OSError as e:
            self.error(
                f"start: couldn't bind HTTP server socket, hostname: {self.host}, "
                f"port: {self.port}: {e.strerror}"
            )
            return False
        self.log(
            "INFO", f"main: HTTP server is listening, hostname: {self.host}, port: {self.port}"
        )
        return True

    def chat(self, model: str, req: Request) -> Reply:
        body = req.json()
        if req.path.endswith("embeddings") or req.path == "/embedding":
            return json_reply(200, canned.embeddings(model, body))
        if (
            req.path.endswith("/completions")
            and "chat" not in req.path
            or req.path == "/completion"
        ):
            return json_reply(200, canned.completion("llamacpp", model, body))
        if body.get("stream"):
            return Reply(
                200,
                content_type="text/event-stream",
                stream=canned.chat_stream("llamacpp", model, body),
            )
        return json_reply(200, canned.chat_completion("llamacpp", model, body))

    def metrics(self) -> Reply:
        if not self.flags.get("metrics"):
            return json_reply(
                501,
                {
                    "error": {
                        "code": 501,
                        "type": "not_supported_error",
                        "message": "This server does not support metrics endpoint. "
                        "Start it with `--metrics`",
                    }
                },
            )
        text = (
            "# HELP llamacpp:requests_processing Number of requests processing.\n"
            "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 0\n"
        )
        return Reply(200, text.encode(), "text/plain; version=0.0.4")


INFERENCE = (
    "/v1/chat/completions",
    "/chat/completions",
    "/v1/completions",
    "/completions",
    "/completion",
    "/v1/embeddings",
    "/embeddings",
    "/embedding",
)


class LlamaServer(LlamaBase):
    """``llama-server -m MODEL``: one model, loaded once at start."""

    def __init__(self, flags: dict[str, Any], settings: Settings) -> None:
        super().__init__(flags, settings)
        self.model = str(flags["model"])
        self.model_id = str(flags.get("alias") or self.model)
        self.ready = False

    def lifecycle(self) -> int:
        self.pick_devices()
        if not self.listen():
            return 1
        self.log("INFO", f"srv    load_model: loading model '{self.model}'")
        self.pause(self.settings.load_s)
        if self.settings.fail == "start":
            self.error(
                "llama_model_load: error loading model: GPUMOD_SIM_FAIL=start",
                *oom_lines(self.footprint, 0, self.model)[3:],
            )
            return 1
        try:
            self.hold(self.per_gpu(self.footprint))
        except OutOfSimMemory as e:
            self.error(*oom_lines(e.requested_mb, self.devices.index(e.gpu), self.model))
            return 1
        for gpu in range(len(self.devices)):
            self.log(
                "INFO",
                f"load_tensors:        CUDA{gpu} model buffer size = "
                f"{self.footprint * 0.7:.2f} MiB",
            )
            self.log(
                "INFO",
                f"llama_kv_cache:      CUDA{gpu} KV buffer size = {self.footprint * 0.2:.2f} MiB",
            )
            self.log(
                "INFO",
                f"llama_context:       CUDA{gpu} compute buffer size = "
                f"{self.footprint * 0.1:.2f} MiB",
            )
        self.ready = True
        self.log(
            "INFO",
            f"main: server is listening on http://{self.host}:{self.port} - starting the main loop",
        )
        self.wait_forever()
        return 0

    def handle(self, req: Request) -> Reply:
        if not self.ready:
            return LOADING
        if req.path in ("/health", "/v1/health"):
            return HEALTHY
        if req.path in ("/v1/models", "/models"):
            card = {
                "id": self.model_id,
                "object": "model",
                "created": self.created,
                "owned_by": "llamacpp",
                "meta": {"n_ctx_train": self.ctx or 4096},
            }
            return json_reply(200, {"object": "list", "data": [card]})
        if req.path == "/props":
            return json_reply(
                200,
                {
                    "model_path": self.model,
                    "total_slots": 1,
                    "is_sleeping": False,
                    "default_generation_settings": {"n_ctx": self.ctx or 4096},
                },
            )
        if req.path == "/metrics":
            return self.metrics()
        if req.path in INFERENCE and req.method == "POST":
            return self.chat(self.model_id, req)
        return NOT_FOUND


def make_llamacpp(argv: Sequence[str], settings: Settings) -> LlamaBase:
    """A single-model server with ``-m``/``-hf``, else a router (default dir: llama.cpp's cache)."""
    flags = pick_flags(argv, VALUED, SWITCHES)
    if not flags.get("model") and flags.get("hf"):
        flags["model"] = flags["hf"]  # -hf org/repo[:quant]: one model, downloaded by llama.cpp
    if flags.get("model"):
        return LlamaServer(flags, settings)
    from gpumod.sim.llamacpp_router import LlamaRouter

    flags.setdefault("models_dir", os.environ.get("LLAMA_CACHE") or "~/.cache/llama.cpp")
    return LlamaRouter(flags, settings)
