"""Fixed results for the TUI's screen tests: the repository's `specs/` switched to mode rag, as
if observed at a fixed time with fixed pids and measurements (what a snapshot can compare).

Built with the operations layer's own pure planning (``plan_observed`` + ``status_of``), so the
figures are the ones a live pod with this state would show."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from gpumod.core.model import GpuInfo, ObservedPod, ObservedService
from gpumod.ops.simulate import SimulationResult
from gpumod.ops.snapshot import plan_observed
from gpumod.ops.status import StatusResult, status_of
from gpumod.spec import PresetCatalog, SpecSet, load_specs

ROOT = Path(__file__).resolve().parents[2]
POD = "sim-box"
AT = 1_780_000_000.0  # the observation time every duration counts to


def rag_specs(tmp: Path) -> Path:
    specs = tmp / "specs"
    shutil.copytree(ROOT / "specs", specs)
    pod = specs / "pod.yaml"
    pod.write_text(pod.read_text().replace("mode: code", "mode: rag"))
    return specs


def _svc(name: str, status: str, mb: int, port: int, age: float, **kw: object) -> ObservedService:
    return ObservedService(
        name, status, gpus=(0,), pid=4000 + port % 100, port=port, started_at=AT - age, vram_mb=((0, mb),), **kw,
    )


def observed_rag() -> ObservedPod:
    """rag almost converged: hyde keeps failing to start (degraded), 700 MiB of someone else's."""
    services = (
        _svc("embedding-code", "running", 2500, 7071, 3600 * 3 + 60 * 7),
        _svc("embedding", "running", 2200, 7072, 754),
        _svc("chat", "running", 8598, 7073, 751),
        _svc("glm-code", "sleeping", 300, 7070, 3600 * 3, sleep_level="router"),
        _svc("reranker", "sleeping", 400, 7074, 700, sleep_level="l2"),
        ObservedService(
            "hyde", "failed", port=7077, failures=2, last_failure_at=AT - 5, message="exited with status 1",
            last_error="exited with status 1 before it became healthy", last_log_line="[error] CUDA out of memory",
        ),
    )
    gpu = GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564, used_mb=2500 + 2200 + 8598 + 300 + 400 + 700)
    return ObservedPod(POD, gpus=(gpu,), services=services, foreign_mb=((0, 700),), observed_at=AT)


def _observed(specs: SpecSet) -> tuple[ObservedPod, ...]:
    """``observed_rag`` started from these very specs (their hashes and ports: no restart due)."""
    pod = observed_rag()
    desired = plan_observed(specs, PresetCatalog.load(), list(specs.pods), (pod,)).desired_pod(POD)
    assert desired is not None
    services = []
    for got in pod.services:
        want = desired.service(got.name)
        assert want is not None, got.name
        services.append(replace(got, spec_hash=want.spec_hash, port=want.spec.port))
    return (replace(pod, services=tuple(services)),)


def fixed_status(tmp: Path) -> StatusResult:
    specs = load_specs(rag_specs(tmp))
    snap = plan_observed(specs, PresetCatalog.load(), list(specs.pods), _observed(specs))
    return status_of(snap)


def fixed_simulation(tmp: Path, mode: str = "everything") -> SimulationResult:
    specs = load_specs(rag_specs(tmp))
    pods, observed, catalog = list(specs.pods), _observed(specs), PresetCatalog.load()
    current = plan_observed(specs, catalog, pods, observed)
    proposed = plan_observed(specs, catalog, pods, observed, mode_override={POD: mode})
    return SimulationResult(POD, current, proposed, mode)
