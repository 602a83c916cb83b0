"""What a driver is: pure functions from a resolved service to a launch and to HTTP calls.

A driver never runs anything itself. It says which command line starts the server (``Launch``),
which HTTP calls sleep, wake or load it (``HttpCall``, sent *on the pod* by the pod agent, so no
port needs to be exposed), which URLs to probe while observing (``Probe``), and how to read the
answers (``parse``). That keeps drivers testable on recorded outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Protocol

from gpumod.spec.resolved import ResolvedService

Readiness = Literal["refused", "loading", "ready", "error"]


@dataclass(frozen=True)
class PodContext:
    """What a driver needs to know about the pod it renders for."""

    pod: str
    sim: bool = False
    python: str = "python3"  # the pod's Python (for {python} in commands, and the sim server)
    binaries: tuple[tuple[str, tuple[str, ...]], ...] = ()  # server kind -> argv prefix
    state_dir: str = "~/.gpumod"

    def binary(self, kind: str) -> tuple[str, ...]:
        for k, argv in self.binaries:
            if k == kind:
                return argv
        return (kind,)


@dataclass(frozen=True)
class Probe:
    """A GET the pod agent makes on 127.0.0.1:port while observing; ``key`` names the answer.

    ``grep``: keep only the body lines containing it (e.g. one metric of a large /metrics page).
    """

    key: str
    path: str
    grep: str = ""


@dataclass(frozen=True)
class Launch:
    """Everything the supervisor needs to start one service."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str | None
    port: int
    gpus: tuple[int, ...]
    spec_hash: str
    driver: str
    sleep: str
    probes: tuple[Probe, ...]
    stop_timeout_s: float = 30.0
    meta: tuple[tuple[str, Any], ...] = ()


def service_launch(
    svc: ResolvedService,
    gpus: tuple[int, ...],
    *,
    argv: Iterable[str],
    env: tuple[tuple[str, str], ...],
    probes: tuple[Probe, ...],
    sleep: str | None = None,
    cwd: str | None | bool = True,
    meta: tuple[tuple[str, Any], ...] = (),
) -> Launch:
    """A ``Launch`` with the fields every driver fills the same way from the service."""
    return Launch(
        name=svc.name,
        argv=tuple(argv),
        env=env,
        cwd=svc.cwd if cwd is True else (cwd or None),
        port=svc.port,
        gpus=gpus,
        spec_hash=svc.spec_hash(),
        driver=svc.driver,
        sleep=svc.sleep if sleep is None else sleep,
        probes=probes,
        stop_timeout_s=svc.stop_timeout_s,
        meta=(("model", svc.model), *((("api_key_env", svc.api_key_env),) if svc.api_key_env else ()), *meta),
    )


@dataclass(frozen=True)
class HttpCall:
    method: Literal["GET", "POST"]
    path: str
    body: Any = None
    timeout_s: float = 30.0
    ok_status: tuple[int, ...] = (200,)


@dataclass(frozen=True)
class HttpAnswer:
    status: int  # 0 = connection refused / no answer
    body: str = ""


@dataclass(frozen=True)
class ProbedState:
    """A driver's reading of its probe answers."""

    readiness: Readiness
    sleep_level: str | None = None  # l1 | l2 | router when asleep
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Driver(Protocol):
    name: str

    def launch(self, svc: ResolvedService, gpus: tuple[int, ...], ctx: PodContext) -> Launch: ...

    def after_start(self, svc: ResolvedService) -> list[HttpCall]:
        """Calls once the server is healthy (llama.cpp router: load the model)."""
        ...

    def sleep_calls(self, svc: ResolvedService, level: str) -> list[HttpCall]: ...

    def wake_calls(self, svc: ResolvedService) -> list[HttpCall]: ...

    def parse(self, svc_sleep: str, answers: dict[str, HttpAnswer]) -> ProbedState:
        """Read the answers to ``Launch.probes`` (keyed by ``Probe.key``)."""
        ...
