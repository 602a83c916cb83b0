"""The vLLM flavour of the sim server: ``vllm serve`` as gpumod sees it from the outside.

What matters to gpumod, and is imitated: nothing listens while the engine loads (connection
refused), then ``util × total`` (or ``GPUMOD_SIM_VRAM_MB``) is taken on every GPU of the tensor
parallel group, failing with vLLM's exact ``Free memory on device ...`` error when it is not free;
``/health`` 200 with an empty body; ``/v1/models`` and ``/metrics`` (with
``vllm:engine_sleep_state``) of the real shape; the dev endpoints ``/sleep``, ``/wake_up``,
``/is_sleeping`` (404 without ``VLLM_SERVER_DEV_MODE=1``, 500 without ``--enable-sleep-mode``);
a chat request offering tools (tool_choice auto) is refused with vLLM's 400 unless the server was
started with ``--enable-auto-tool-choice`` and ``--tool-call-parser``;
a wake that finds its memory taken fails with vLLM's ``CUDA Error: out of memory`` and stays
asleep.

One choice where vLLM itself is vague: a chat/completion request to a sleeping engine gets
``503`` at once (real vLLM stalls or errors depending on the release), so callers fail fast.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence

from gpumod.sim import canned
from gpumod.sim.gpu import OutOfSimMemory
from gpumod.sim.runtime import Reply, Request, Settings, SimServer, gib, json_reply, pick_flags

__all__ = ["VllmServer"]

VERSION = "0.11.0"
DEFAULT_MODEL = "facebook/opt-125m"
VALUED = {
    "--host": "host",
    "--port": "port",
    "--model": "model",
    "--served-model-name": "served",
    "--gpu-memory-utilization": "util",
    "--max-model-len": "max_len",
    "--tensor-parallel-size": "tp",
    "-tp": "tp",
    "--reasoning-parser": "reasoning_parser",
    "--tool-call-parser": "tool_parser",
}
SWITCHES = {"--enable-sleep-mode": ("sleep_mode", True), "--enable-auto-tool-choice": ("auto_tools", True)}
RESIDUAL_L1_MB = 600
RESIDUAL_L2_MB = 400
WAKE_OOM = "RuntimeError: CUDA Error: out of memory at /workspace/csrc/cumem_allocator.cpp:163"
NOT_FOUND = json_reply(404, {"detail": "Not Found"})


class VllmServer(SimServer):
    flavour = "vllm"
    server_header = "uvicorn"
    api_key_env = "VLLM_API_KEY"

    def __init__(self, argv: Sequence[str], settings: Settings) -> None:
        args = list(argv)
        model = None
        if args and args[0] == "serve":
            args = args[1:]
            if args and not args[0].startswith("-"):
                model, args = args[0], args[1:]
        flags = pick_flags(args, VALUED, SWITCHES)
        super().__init__(
            settings, flags.get("host", "127.0.0.1"), int(flags.get("port", 8000)), sys.executable
        )
        self.model: str = model or flags.get("model") or DEFAULT_MODEL
        self.served: str = flags.get("served") or self.model
        self.util = float(flags.get("util", 0.9))
        self.max_len = int(flags.get("max_len", 32768))
        self.tp = int(flags.get("tp", 1))
        self.sleep_mode = bool(flags.get("sleep_mode", False))
        self.reasoning = bool(flags.get("reasoning_parser"))  # answers carry reasoning_content
        # gpt-oss speaks harmony, whose tool calls vLLM parses without the two tool-calling flags
        harmony = "gpt-oss" in self.model.lower()
        self.auto_tools = harmony or bool(flags.get("auto_tools")) and bool(flags.get("tool_parser"))
        self.awake_mb: dict[int, int] = {}
        self.sleep_level = 0  # 0 awake, 1 weights offloaded, 2 all discarded
        self.awake_tags: set[str] = {"weights", "kv_cache"}
        self.created = int(time.time())
        self.served_requests = 0
        self._transition = threading.Lock()  # one sleep/wake at a time

    # ---- lifecycle (main thread) ------------------------------------------------------------

    def lifecycle(self) -> int:
        self.log("INFO", f"vLLM API server version {VERSION} (gpumod sim)")
        self.log(
            "INFO",
            f"args: model={self.model!r} tp={self.tp} util={self.util} "
            f"max_model_len={self.max_len} sleep_mode={self.sleep_mode}",
        )
        gpus = self.visible_gpus()
        if not gpus:
            self.error("RuntimeError: No CUDA GPUs are available")
            return 1
        if len(gpus) < self.tp:
            self.error(
                f"ValueError: World size ({self.tp}) is larger than the number of available "
                f"GPUs ({len(gpus)}) in this node."
            )
            return 1
        gpus = gpus[: self.tp]
        self.devices = [g.index for g in gpus]
        self.awake_mb = {
            g.index: self.settings.vram_mb
            if self.settings.vram_mb is not None
            else int(self.util * g.memory_mb)
            for g in gpus
        }
        self.pause(self.settings.load_s)  # loading: nothing listens
        if self.settings.fail == "start":
            self.error(
                "ERROR EngineCore failed to start (GPUMOD_SIM_FAIL=start).",
                "RuntimeError: Engine core initialization failed. See root cause above. "
                "Failed core proc(s): {}",
            )
            return 1
        try:
            self.hold(self.awake_mb)
        except OutOfSimMemory as e:
            ordinal = self.devices.index(e.gpu)
            self.error(
                "ERROR EngineCore failed to start.",
                "Traceback (most recent call last):",
                '  File "vllm/v1/worker/gpu_worker.py", line 240, in init_device',
                f"ValueError: Free memory on device cuda:{ordinal} ({gib(e.free_mb)}/"
                f"{gib(e.total_mb)} GiB) on startup is less than desired GPU memory utilization "
                f"({self.util}, {gib(e.requested_mb)} GiB). Decrease GPU memory utilization or "
                "reduce GPU memory used by other processes.",
                "RuntimeError: Engine core initialization failed. See root cause above. "
                "Failed core proc(s): {}",
            )
            return 1
        per_gpu = min(self.awake_mb.values())
        self.log("INFO", f"Available KV cache memory: {gib(per_gpu * 0.4)} GiB")
        self.log("INFO", f"GPU KV cache size: {per_gpu * 16:,} tokens")
        try:
            self.bind()
        except OSError as e:
            self.error(f"OSError: [Errno {e.errno}] {e.strerror}")
            return 1
        self.log("INFO", f"Starting vLLM API server 0 on http://{self.host}:{self.port}")
        self.log("INFO", "Application startup complete.")
        self.wait_forever()
        return 0

    # ---- HTTP -------------------------------------------------------------------------------

    def handle(self, req: Request) -> Reply:
        routes: dict[str, dict[str, Callable[[Request], Reply]]] = {
            "/health": {"GET": lambda r: Reply(200)},
            "/ping": {"GET": lambda r: Reply(200), "POST": lambda r: Reply(200)},
            "/version": {"GET": lambda r: json_reply(200, {"version": VERSION})},
            "/v1/models": {"GET": self._models},
            "/metrics": {"GET": self._metrics},
            "/v1/chat/completions": {"POST": self._chat},
            "/v1/completions": {"POST": self._completions},
            "/v1/embeddings": {"POST": self._embeddings},
        }
        if self.settings.dev_mode:
            routes |= {
                "/sleep": {"POST": self._sleep},
                "/wake_up": {"POST": self._wake},
                "/is_sleeping": {"GET": self._is_sleeping},
                "/collective_rpc": {
                    "POST": lambda r: json_reply(200, {"results": [None] * self.tp})
                },
                "/reset_prefix_cache": {"POST": lambda r: Reply(200)},
            }
        methods = routes.get(req.path)
        if methods is None:
            return NOT_FOUND
        handler = methods.get("GET" if req.method == "HEAD" else req.method)
        if handler is None:
            return json_reply(405, {"detail": "Method Not Allowed"})
        return handler(req)

    def _models(self, req: Request) -> Reply:
        card = {
            "id": self.served,
            "object": "model",
            "created": self.created,
            "owned_by": "vllm",
            "root": self.model,
            "parent": None,
            "max_model_len": self.max_len,
            "permission": [
                {
                    "id": f"modelperm-{self.pid}",
                    "object": "model_permission",
                    "created": self.created,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ],
        }
        return json_reply(200, {"object": "list", "data": [card]})

    def _metrics(self, req: Request) -> Reply:
        labels = f'engine="0",model_name="{self.served}"'
        states = {
            "awake": self.sleep_level == 0,
            "weights_offloaded": self.sleep_level == 1,
            "discard_all": self.sleep_level == 2,
        }
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{labels}}} 0.0",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{labels}}} 0.0",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{labels}}} 0.0",
            "# HELP vllm:engine_sleep_state Engine sleep state; awake = 0 means engine is "
            "sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep "
            "level 1; discard_all = 1 means sleep level 2.",
            "# TYPE vllm:engine_sleep_state gauge",
            *(
                f'vllm:engine_sleep_state{{{labels},sleep_state="{state}"}} {float(on)}'
                for state, on in states.items()
            ),
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{{labels},finished_reason="stop"}} '
            f"{float(self.served_requests)}",
        ]
        return Reply(
            200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4; charset=utf-8"
        )

    # ---- sleep / wake (dev mode) ------------------------------------------------------------

    def _sleep(self, req: Request) -> Reply:
        level = req.arg("level", "1")
        if level not in ("0", "1", "2"):
            return json_reply(
                400, {"error": {"message": f"invalid sleep level {level!r}", "code": 400}}
            )
        if not self.sleep_mode:
            self.log("ERROR", "AssertionError: Sleep mode is not enabled in the model config")
            return json_reply(
                500,
                {
                    "error": {
                        "message": "Sleep mode is not enabled in the model "
                        "config; start vLLM with --enable-sleep-mode",
                        "type": "InternalServerError",
                        "code": 500,
                    }
                },
            )
        with self._transition:
            if level == "0" or self.sleep_level:
                return Reply(200)  # level 0 only pauses scheduling; sleeping again is a no-op
            self.pause(self.settings.sleep_s)
            residual = self.settings.sleep_mb
            if residual is None:
                residual = RESIDUAL_L1_MB if level == "1" else RESIDUAL_L2_MB
            self.hold({gpu: min(residual, mb) for gpu, mb in self.awake_mb.items()})
            self.sleep_level = int(level)
            self.awake_tags = set()
            self.log("INFO", f"engine asleep (level {level}), holding {residual} MiB per GPU")
        return Reply(200)

    def _wake(self, req: Request) -> Reply:
        tags = set(req.query.get("tags", [])) or {"weights", "kv_cache"}
        with self._transition:
            if not self.sleep_level:
                return Reply(200)
            if not self.awake_tags:  # the first wake call brings the memory back
                self.pause(self.settings.wake_s)
                try:
                    self.hold(self.awake_mb)
                except OutOfSimMemory as e:
                    self.log(
                        "ERROR",
                        f"{WAKE_OOM} (GPU {e.gpu}: {e.free_mb} MiB free, "
                        f"{e.requested_mb} MiB needed)",
                    )
                    return Reply(500, f"{WAKE_OOM}\n".encode(), "text/plain; charset=utf-8")
            self.awake_tags |= tags
            if self.awake_tags >= {"weights", "kv_cache"}:
                self.sleep_level = 0
                self.log("INFO", "engine awake")
        return Reply(200)

    def _is_sleeping(self, req: Request) -> Reply:
        return json_reply(200, {"is_sleeping": self.sleep_level > 0})

    # ---- OpenAI API -------------------------------------------------------------------------

    def _check(self, body: dict[str, object]) -> Reply | None:
        model = body.get("model")
        if model is not None and model not in (self.served, self.model):
            return json_reply(
                404,
                {
                    "error": {
                        "message": f"The model `{model}` does not exist.",
                        "type": "NotFoundError",
                        "param": "model",
                        "code": 404,
                    }
                },
            )
        if self.sleep_level:
            return json_reply(
                503,
                {
                    "error": {
                        "message": "The engine is sleeping; POST /wake_up first.",
                        "type": "ServiceUnavailableError",
                        "code": 503,
                    }
                },
            )
        self.served_requests += 1
        return None

    def _chat(self, req: Request) -> Reply:
        body = req.json()
        refusal = self._check(body)
        if refusal is not None:
            return refusal
        # vLLM: tools without a tool_choice mean "auto", which needs both flags (else 400)
        if body.get("tools") and body.get("tool_choice", "auto") == "auto" and not self.auto_tools:
            return json_reply(400, {
                "object": "error", "type": "BadRequestError", "param": None, "code": 400,
                "message": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
            })
        if body.get("stream"):
            return Reply(
                200,
                content_type="text/event-stream; charset=utf-8",
                stream=canned.chat_stream("vllm", self.served, body, reasoning=self.reasoning),
            )
        return json_reply(200, canned.chat_completion("vllm", self.served, body, reasoning=self.reasoning))

    def _completions(self, req: Request) -> Reply:
        body = req.json()
        return self._check(body) or json_reply(200, canned.completion("vllm", self.served, body))

    def _embeddings(self, req: Request) -> Reply:
        body = req.json()
        return self._check(body) or json_reply(200, canned.embeddings(self.served, body))
