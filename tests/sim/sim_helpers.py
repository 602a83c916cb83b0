"""Helpers of the sim tests: plain HTTP to 127.0.0.1, polling, views of a sim pod and a server."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpumod.sim.gpu import SimGpus
from gpumod.sim.nvidia_smi import run as nvidia_smi_run
from testkit import free_port, wait_until  # noqa: F401 - free_port is re-exported to the sim tests

RTX_4090 = ("NVIDIA GeForce RTX 4090", 24564)
SIM_ENV_NAMES = ("CUDA_VISIBLE_DEVICES", "VLLM_SERVER_DEV_MODE")


def request(
    method: str, port: int, path: str, body: Any = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """(status, body) of one request to 127.0.0.1:port; status 0 when the connection is refused."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except ConnectionRefusedError:
        return 0, b""
    finally:
        conn.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.01) -> bool:
    return wait_until(predicate, timeout, step)


@dataclass
class SimPod:
    dir: Path
    bindir: Path

    @property
    def gpus(self) -> SimGpus:
        return SimGpus(self.dir)

    def smi(self, *argv: str) -> str:
        code, out, err = nvidia_smi_run(list(argv), {"GPUMOD_SIM_DIR": str(self.dir)})
        assert code == 0, err
        return out

    def used(self, gpu: int = 0) -> int:
        out = self.smi("--query-gpu=index,memory.used", "--format=csv,noheader,nounits")
        rows = dict(line.split(", ") for line in out.splitlines())
        return int(rows[str(gpu)])


@dataclass
class ServerProc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str) -> tuple[int, bytes]:
        return request("GET", self.port, path)

    def post(self, path: str, body: Any = None) -> tuple[int, bytes]:
        return request("POST", self.port, path, body)

    def wait_status(self, path: str, status: int, timeout: float = 5.0) -> bool:
        return wait_for(lambda: self.get(path)[0] == status, timeout)

    def stderr(self) -> str:
        return self.err.read_text()

    def stdout(self) -> str:
        return self.log.read_text()
