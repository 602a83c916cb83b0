"""One error tree for everything gpumod reports to a user.

    GpumodError                      base; ``message`` + ``hint`` (what to do next)
    ├── SpecError                    the spec repo is invalid; carries every ``Problem`` found
    ├── InfeasibleError              the desired end state does not fit some GPU (nothing touched)
    ├── UnsupportedError             a feature the spec asks for is not available (yet)
    ├── UsageError                   the command asks for what the specs do not define (exit 2)
    ├── StalePlanError               a saved plan no longer matches the specs or the pods
    ├── PodError                     talking to a pod failed (pod named)
    │   ├── PodUnreachableError      the pod cannot be reached at all
    │   └── VramReleaseTimeoutError  a GPU lacks the free VRAM a fill wave needs (after stops/sleeps)
    └── StepError                    one plan step failed on a pod (pod + service named)
        └── HealthTimeoutError       a started service did not become healthy in time

At the CLI edge a ``GpumodError`` is printed as one red line plus its hint; anything else is a
bug and gets a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class GpumodError(Exception):
    """Base of every error gpumod expects and explains."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        if hint:
            self.hint = hint
        self.fields = fields

    def __str__(self) -> str:
        return self.message

    def details(self) -> list[str]:
        """The lines a face shows before the message (every problem, every shortfall...)."""
        return []

    def to_json(self) -> dict[str, Any]:
        """What ``-o json`` prints on stdout instead of the command's document when it fails."""
        return {"error": self.message, "hint": self.hint, "details": [d.strip() for d in self.details()]}


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in a spec file: ``path:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class SpecError(GpumodError):
    """Problems found at ``path:line``. The default hint sends the user back to the files; a
    problem that is not in the files (a secret missing on this machine, a pod that reports no
    GPU) carries its own hint instead."""

    hint = "fix the files named above, then run `gpumod validate` again"

    def __init__(self, problems: list[Problem], *, hint: str = "", summary: str = "") -> None:
        """``summary``: the message, when the problems are not mistakes in the files (e.g. "2
        secret(s) missing on this machine"); by default "N problem(s) in the specs"."""
        self.problems = sorted(problems)
        super().__init__(summary or f"{len(self.problems)} problem(s) in the specs", hint=hint)

    def details(self) -> list[str]:
        return [str(p) for p in self.problems]

    def to_json(self) -> dict[str, Any]:
        problems = [{"path": p.path, "line": p.line, "message": p.message} for p in self.problems]
        return super().to_json() | {"problems": problems}


class UnsupportedError(GpumodError):
    pass


class UsageError(GpumodError):
    """The command line asks for something the specs do not define (``--pod nope``, ``setup`` of
    pods without ``setup:``): refused before anything is touched, exit 2 whatever the command."""


@dataclass(frozen=True)
class GpuShortfall:
    """Why one GPU does not fit: what is needed, what it has, who uses what."""

    pod: str
    gpu: int
    gpu_name: str
    capacity_mb: int
    need_mb: int
    users: tuple[tuple[str, int], ...]

    @property
    def over_mb(self) -> int:
        return self.need_mb - self.capacity_mb


@dataclass(frozen=True)
class Alternative:
    """One way to make the end state fit, with the MiB it saves."""

    text: str
    saves_mb: int = 0


@dataclass(frozen=True)
class Infeasibility:
    pod: str
    shortfalls: tuple[GpuShortfall, ...]
    alternatives: tuple[Alternative, ...] = field(default=())

    def describe(self) -> str:
        lines = []
        for s in self.shortfalls:
            lines.append(
                f"pod {s.pod}: GPU {s.gpu} ({s.gpu_name}) needs {s.need_mb} MiB of "
                f"{s.capacity_mb} MiB: {s.over_mb} MiB over"
            )
            for who, mb in s.users:
                lines.append(f"    {mb:>7} MiB  {who}")
        if self.alternatives:
            lines.append("  alternatives:")
            lines.extend(f"    - {a.text}" for a in self.alternatives)
        return "\n".join(lines)


class InfeasibleError(GpumodError):
    hint = "pick one of the alternatives above, edit the specs, then run `gpumod plan` again"

    def __init__(self, infeasible: list[Infeasibility]) -> None:
        self.infeasible = infeasible
        pods = ", ".join(i.pod for i in infeasible)
        super().__init__(f"the desired state does not fit the GPUs of pod(s) {pods}; nothing was touched")

    def details(self) -> list[str]:
        return [i.describe() for i in self.infeasible]


class StalePlanError(GpumodError):
    """A saved plan whose specs or pod observations changed since it was made; ``changes`` says
    what changed, one line each. Nothing is touched."""

    def __init__(self, changes: list[str], *, plan_file: str = "", spec_dir: str = "") -> None:
        self.changes = changes
        again = f"gpumod plan {spec_dir or 'DIR'} --out {plan_file or 'FILE'}"
        super().__init__(
            "the saved plan is stale (the specs or a pod changed since it was made); nothing was touched",
            hint=f"run `{again}` again, review the new plan, then apply that file",
        )

    def details(self) -> list[str]:
        return [f"  {c}" for c in self.changes]


class PodError(GpumodError):
    def __init__(self, pod: str, message: str, *, hint: str = "") -> None:
        self.pod = pod
        self.detail = message  # without the pod: for reports that already name it
        super().__init__(f"pod {pod}: {message}", hint=hint)


class PodUnreachableError(PodError):
    pass


class StepError(GpumodError):
    """``detail`` is the cause alone (``not healthy after 6 s``), without pod and service."""

    def __init__(self, pod: str, service: str, message: str, *, hint: str = "") -> None:
        self.pod = pod
        self.service = service
        self.detail = message
        super().__init__(f"pod {pod}, service {service}: {message}", hint=hint)


class HealthTimeoutError(StepError):
    pass


class VramReleaseTimeoutError(PodError):
    pass


class ProvisionRefusedError(GpumodError):
    """A pod cannot be set up as its ``setup:`` asks, or a model download does not fit its disk;
    refused before anything ran (``gpumod.drivers.provision.SetupRefusedError``)."""
