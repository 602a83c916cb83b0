"""The plain flavour of the sim server: any HTTP app with a health endpoint (a FastAPI app).

gpumod's ``command``/``fastapi`` drivers only need a process that listens at once, answers
``/health`` 503 while it loads and 200 once it is ready, and holds some VRAM while it runs
(``GPUMOD_SIM_VRAM_MB``, default 1000 MiB; 0 = a CPU-only app).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gpumod.sim.gpu import OutOfSimMemory
from gpumod.sim.runtime import Reply, Request, Settings, SimServer, gib, json_reply, pick_flags

__all__ = ["PlainServer"]

DEFAULT_MB = 1000
VALUED = {"--host": "host", "--port": "port"}


class PlainServer(SimServer):
    flavour = "plain"
    server_header = "uvicorn"

    def __init__(self, argv: Sequence[str], settings: Settings) -> None:
        flags = pick_flags(argv, VALUED)
        super().__init__(
            settings, flags.get("host", "127.0.0.1"), int(flags.get("port", 8000)), sys.executable
        )
        self.footprint = settings.vram_mb if settings.vram_mb is not None else DEFAULT_MB
        self.ready = False

    def lifecycle(self) -> int:
        gpus = self.visible_gpus()[:1]
        self.devices = [g.index for g in gpus]
        if not gpus and self.footprint:
            self.log("WARN", "no CUDA device visible: running on the CPU, holding no GPU memory")
        try:
            self.bind()
        except OSError as e:
            self.error(
                f"ERROR:    [Errno {e.errno}] error while attempting to bind on address "
                f"('{self.host}', {self.port}): {e.strerror}"
            )
            return 1
        self.log(
            "INFO", f"Uvicorn running on http://{self.host}:{self.port} (Press CTRL+C to quit)"
        )
        self.pause(self.settings.load_s)
        if self.settings.fail == "start":
            self.error("RuntimeError: application startup failed (GPUMOD_SIM_FAIL=start)")
            return 1
        if self.footprint:
            try:
                self.hold({gpu: self.footprint for gpu in self.devices})
            except OutOfSimMemory as e:
                self.error(
                    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                    f"{gib(e.requested_mb)} GiB. GPU 0 has a total capacity of "
                    f"{gib(e.total_mb)} GiB of which {gib(e.free_mb)} GiB is free.",
                    "ERROR:    Application startup failed. Exiting.",
                )
                return 1
        self.ready = True
        self.log("INFO", "Application startup complete.")
        self.wait_forever()
        return 0

    def handle(self, req: Request) -> Reply:
        if req.path == "/health":
            if not self.ready:
                return json_reply(503, {"status": "loading"})
            return json_reply(200, {"status": "ok"})
        if req.path == "/" and req.method in ("GET", "HEAD"):
            return json_reply(200, {"app": "gpumod-sim", "ready": self.ready})
        return json_reply(404, {"detail": "Not Found"})
