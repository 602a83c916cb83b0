"""What an operation tells its caller while it runs: typed events through one ``Reporter``.

Why a module of its own: every face (CLI, MCP, TUI) shows progress differently, but the
operations must not know which face called them. An operation emits frozen event values; a face
implements ``Reporter`` — ONE method, ``event(e)`` — and matches on the event's type. A reporter
that ignores an event type simply does nothing for it, so new events never break a face.

    PassStarted(pass_no, pods)       an observe → plan → execute pass begins
    PlanBuilt(plan, pass_no)         a plan with changes, about to be confirmed / run
    StepStarted(pod, step)           one step begins on a pod
    StepFinished(pod, outcome)       one step ended (ok / failed / skipped)
    Progress(pod, step, ...)         a download step's bytes so far, total, rate
    Note(text, detail)               a line for a person ("waiting for x to become ready")
    RunFinished(result)              an apply run ended (its ApplyResult: the recap)
    RunFailed(error, traceback)      an apply run of ``watch`` raised (invalid specs, a bug...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Union

from gpumod.core.model import Plan, Step

if TYPE_CHECKING:  # annotations only: `plan` does not load the executor
    from gpumod.execute import StepOutcome
    from gpumod.ops.apply import ApplyResult

__all__ = [
    "Event",
    "Note",
    "NullReporter",
    "PassStarted",
    "PlanBuilt",
    "Progress",
    "Reporter",
    "RunFailed",
    "RunFinished",
    "StepFinished",
    "StepStarted",
]


@dataclass(frozen=True)
class PassStarted:
    pass_no: int
    pods: tuple[str, ...]


@dataclass(frozen=True)
class PlanBuilt:
    plan: Plan
    pass_no: int


@dataclass(frozen=True)
class StepStarted:
    pod: str
    step: Step


@dataclass(frozen=True)
class StepFinished:
    pod: str
    outcome: StepOutcome


@dataclass(frozen=True)
class Progress:
    """A download step's progress on a pod: bytes present / total, this run's rate (bytes/s)."""

    pod: str
    step: Step
    kind: str  # start | progress | done
    done: int
    total: int
    rate: int = 0
    file: str = ""

    @property
    def eta_s(self) -> float | None:
        return None if self.rate <= 0 else max(0, self.total - self.done) / self.rate

    @property
    def tenth(self) -> int:
        """Which tenth of the bytes are present (0-10): faces that print lines report each once."""
        return 10 * self.done // self.total if self.total > 0 else 0

    def line(self) -> str:
        """The event as one plain line for a person (MCP progress, the TUI's output panel)."""
        from gpumod.drivers.provision import human_bytes

        what = self.step.detail or self.step.service
        if self.kind != "progress":
            return f"{self.pod}: {'downloading' if self.kind == 'start' else 'downloaded'} {what}"
        eta = "" if self.eta_s is None else f", {self.eta_s:.0f} s left"
        share = f"{100 * self.done // self.total}% " if self.total else ""
        return (f"{self.pod}: {what}: {share}({human_bytes(self.done)} of {human_bytes(self.total)}, "
                f"{human_bytes(self.rate)}/s{eta})")

    def to_json(self) -> dict[str, object]:
        return {"event": "progress", "pod": self.pod, "service": self.step.service, "what": self.step.detail,
                "kind": self.kind, "done": self.done, "total": self.total, "rate": self.rate, "file": self.file}


@dataclass(frozen=True)
class Note:
    text: str
    detail: bool = True  # a secondary line (a face may dim it); False: a headline of watch


@dataclass(frozen=True)
class RunFinished:
    result: "ApplyResult"


@dataclass(frozen=True)
class RunFailed:
    error: BaseException
    traceback: str = ""  # set when the error is a bug (not a GpumodError)


Event = Union[PassStarted, PlanBuilt, StepStarted, StepFinished, Progress, Note, RunFinished, RunFailed]


class Reporter(Protocol):
    """Whoever wants to follow an operation: one method, called with each event in order."""

    def event(self, e: Event) -> None: ...


class NullReporter:
    """Follows nothing (the default of every operation)."""

    def event(self, e: Event) -> None:
        return None


class ProgressLines:
    """Which download events a line-printing face shows: the start, each new tenth, the end."""

    def __init__(self) -> None:
        self._tenths: dict[tuple[str, str], int] = {}

    def due(self, e: Progress) -> bool:
        if e.kind != "progress":
            return True
        key = (e.pod, e.step.service)
        if self._tenths.get(key) == e.tenth:
            return False
        self._tenths[key] = e.tenth
        return True
