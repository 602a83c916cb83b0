"""The MCP server: each tool calls one operation of ``gpumod.ops`` and returns its ``to_json()``.

Why a module of its own: an agent must see the same figures as the CLI and the TUI, so this
face decides nothing — it maps tool arguments to an operation, the operation's events to MCP
progress notifications, and a ``GpumodError`` to a tool error carrying the text the CLI prints
(the problems or shortfalls, ``error: …``, ``hint: …``), never a traceback.

Tools (the seed's names): ``gpu_mode_status``, ``gpu_mode_verify``, ``simulate_mode``,
``service_list``, ``service_status``, ``service_logs``, ``plan``, ``model_info`` read and touch nothing;
``gpu_mode_switch`` (edits the pod's ``mode:`` line, then applies) and ``apply`` change pods and
are refused unless the server was started with ``--allow-apply``.
Resources: ``gpumod://specs`` (the spec files), ``gpumod://specs/{path}`` (one file's YAML) and
``gpumod://plan/last`` (the last plan a tool made or ran).
"""

from __future__ import annotations

import asyncio
import inspect
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence, TypeVar

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations

from gpumod import __version__
from gpumod.core.model import Plan
from gpumod.core.render import render_plan
from gpumod.errors import GpumodError, Problem, SpecError
from gpumod.logconfig import get_logger
from gpumod.ops import apply as ops_apply
from gpumod.ops import inventory
from gpumod.ops import logs as ops_logs
from gpumod.ops import model_info as ops_model_info
from gpumod.ops import plan as ops_plan
from gpumod.ops import simulate as ops_simulate
from gpumod.ops import status as ops_status
from gpumod.ops import verify as ops_verify
from gpumod.ops.events import (
    Event,
    Note,
    PassStarted,
    PlanBuilt,
    Progress,
    ProgressLines,
    RunFailed,
    RunFinished,
    StepFinished,
    StepStarted,
)
from gpumod.ops.switch_mode import switch_mode
from gpumod.spec.loader import spec_files

__all__ = ["REFUSED", "build_server", "error_text", "progress_text"]

log = get_logger("gpumod.mcp")

REFUSED = "started without --allow-apply; restart the server with --allow-apply to let agents change pods"

INSTRUCTIONS = """\
gpumod makes GPU pods match YAML specs kept in git. A pod runs one mode (a set of model
services). Read the state with gpu_mode_status; ask "would mode X fit?" with simulate_mode
(touches nothing); switch with gpu_mode_switch (edits the pod's `mode:` line in the spec, then
reconciles), and check the result with gpu_mode_verify. VRAM figures are MiB."""

_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_CHANGE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)

T = TypeVar("T")


def error_text(e: GpumodError) -> str:
    """A known error as the CLI prints it: its details (problems, shortfalls), then ``error:`` and ``hint:``."""
    lines = [*e.details(), f"error: {e.message}"]
    if e.hint:
        lines.append(f"hint: {e.hint}")
    return "\n".join(lines)


async def _answer(work: Callable[[], Awaitable[T]] | Callable[[], T]) -> T:
    """Run one tool's operation; a known error becomes a tool error with the CLI's text, anything
    else a tool error naming it as a bug (its traceback goes to the server's log, not the agent)."""
    try:
        found = work()
        return await found if inspect.isawaitable(found) else found
    except ToolError:
        raise
    except GpumodError as e:
        raise ToolError(error_text(e)) from None
    except Exception as e:  # a bug: never a traceback to the agent
        log.error("mcp.tool_failed", error=repr(e), traceback=traceback.format_exc())
        raise ToolError(f"error: internal error in gpumod: {type(e).__name__}: {e}\nhint: this is a bug; "
                        "the traceback is in the server's log (stderr)") from None


def progress_text(e: Event) -> str | None:
    """One event as one progress message (plain text); None for events not worth a message."""
    if isinstance(e, PassStarted):
        return f"pass {e.pass_no}: observing {', '.join(e.pods)}"
    if isinstance(e, PlanBuilt):
        return "\n".join([f"plan: {e.plan.changes} change(s)", *render_plan(e.plan)])
    if isinstance(e, StepStarted):
        return f"{e.pod}: {e.step.render()} …"
    if isinstance(e, StepFinished):
        o, s = e.outcome, e.outcome.step
        why = f" — {o.message}" if o.message else ""
        return f"{e.pod}: {s.symbol} {s.action} {s.service} … {o.status} ({o.seconds:.1f}s){why}"
    if isinstance(e, Note):
        return e.text
    if isinstance(e, Progress):
        return e.line()
    if isinstance(e, RunFinished):
        r = e.result
        done = "converged" if r.converged else "not converged"
        return f"{done} after {r.passes} pass(es)" + "".join(f"\n{p}" for p in r.problems)
    if isinstance(e, RunFailed):
        return error_text(e.error) if isinstance(e.error, GpumodError) else f"error: {e.error}"
    return None


class _Progress:
    """The ``Reporter`` of a mutating tool: every event becomes one MCP progress notification, in
    order (the operation calls ``event`` synchronously; a task sends them as it goes)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent = 0
        self._task: asyncio.Task[None] | None = None
        self._downloads = ProgressLines()  # a notification per tenth of a download, not per chunk

    def event(self, e: Event) -> None:
        if isinstance(e, Progress) and not self._downloads.due(e):
            return
        text = progress_text(e)
        if text is not None:
            self.queue.put_nowait(text)

    async def _send(self) -> None:
        while (text := await self.queue.get()) is not None:
            self.sent += 1
            try:
                await self.ctx.report_progress(self.sent, None, text)
            except Exception as e:  # a client gone mid-run must not stop the apply
                log.warning("mcp.progress_failed", error=repr(e))

    async def __aenter__(self) -> _Progress:
        self._task = asyncio.create_task(self._send())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.queue.put_nowait(None)
        if self._task is not None:
            await self._task


@dataclass
class _LastPlan:
    tool: str
    made_at: float
    plan: Plan

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "made_at": self.made_at, "plan": self.plan.to_json()}


def build_server(spec_dir: str | Path, *, allow_apply: bool = False, auth: Any = None) -> FastMCP:
    """The FastMCP server over the specs in ``spec_dir`` (re-read on every call: git is the truth).

    ``allow_apply``: let ``gpu_mode_switch`` and ``apply`` change pods. ``auth``: FastMCP's auth
    provider (the bearer token of ``--http``)."""
    root = Path(spec_dir)
    mcp = FastMCP("gpumod", version=__version__, instructions=INSTRUCTIONS, auth=auth, mask_error_details=False)
    last: list[_LastPlan] = []

    def remember(tool: str, plan: Plan | None) -> None:
        if plan is not None:
            last[:] = [_LastPlan(tool, time.time(), plan)]

    def pods(pod: str | None) -> list[str] | None:
        return [pod] if pod else None

    def may_change() -> None:
        if not allow_apply:
            raise ToolError(f"error: refused: the gpumod MCP server was {REFUSED}")

    @mcp.tool(annotations=_READ)
    async def gpu_mode_status(pod: str | None = None) -> dict[str, Any]:
        """Each pod's mode, GPUs (total/used MiB) and services: state, target, GPU, VRAM used and
        budget (MiB), port, pid, failures, what is pending. Observes the pods; touches nothing.
        Same JSON as `gpumod status -o json`."""

        async def run() -> dict[str, Any]:
            found = await ops_status.status(root, pods(pod))
            remember("gpu_mode_status", found.snapshot.plan)
            return found.to_json()

        return await _answer(run)

    @mcp.tool(annotations=_CHANGE)
    async def gpu_mode_switch(mode: str, ctx: Context, pod: str | None = None, commit: bool = False) -> dict[str, Any]:
        """Switch a pod to another mode: edits the pod's `mode:` line in its spec file (only that
        line; git stays the truth), optionally git-commits it (`commit`), then applies until the
        pod converges. A mode that does not fit is refused with the GPU, the MiB over and
        alternatives, and the spec is left unchanged. `pod` may be left out when the specs define
        one pod. Progress comes as notifications; the answer is the edit and the apply recap.
        Needs a server started with --allow-apply."""
        may_change()

        async def run() -> dict[str, Any]:
            async with _Progress(ctx) as progress:
                found = await switch_mode(root, mode, pod, commit=commit, reporter=progress)
            if found.applied is not None:
                remember("gpu_mode_switch", _ran(found.applied))
            return found.to_json()

        return await _answer(run)

    @mcp.tool(annotations=_READ)
    async def gpu_mode_verify(mode: str | None = None, pod: str | None = None) -> dict[str, Any]:
        """Is each pod converged to its mode (or to `mode`)? `ok` is true when every selected pod
        is in that mode per the specs and nothing is pending (nothing to start, stop, sleep or
        wake; nothing degraded or still starting); otherwise `reasons` says why, per pod."""

        async def run() -> dict[str, Any]:
            found = await ops_verify.verify(root, mode, pods(pod))
            remember("gpu_mode_verify", found.snapshot.plan)
            return found.to_json()

        return await _answer(run)

    @mcp.tool(annotations=_READ)
    async def simulate_mode(
        mode: str | None = None,
        add: list[str] | None = None,
        services: list[str] | None = None,
        pod: str | None = None,
    ) -> dict[str, Any]:
        """Would a mode (or exactly `services`, plus `add`) fit the pod's GPUs? Plans it against
        what runs now and touches nothing. `fits` is the answer; when false, the proposed side's
        `infeasible` names each GPU short, by how many MiB (`over_mb`), who uses what, and
        alternatives. `pod` may be left out when the specs define one pod."""
        return await _answer(lambda: _simulate(root, pod, mode, add or (), services))

    @mcp.tool(annotations=_READ)
    async def service_list(pod: str | None = None) -> dict[str, Any]:
        """The services the specs define: preset, port, the modes that list them. With `pod`:
        only those of the pod's mode. Reads the specs only (see service_status for their state)."""

        def run() -> dict[str, Any]:
            listed = inventory.service_list(root, pod)
            return {**({"pod": pod} if pod else {}), "services": [s.to_json() for s in listed]}

        return await _answer(run)

    @mcp.tool(annotations=_READ)
    async def service_status(service: str, pod: str | None = None) -> dict[str, Any]:
        """One service's state on each pod: state, target, GPU, VRAM used/budget (MiB), port,
        failures and a note saying why it is not as wanted. Same JSON as
        `gpumod service status NAME -o json`."""

        async def run() -> dict[str, Any]:
            found, rows = await inventory.service_status(root, service, pods(pod))
            remember("service_status", found.snapshot.plan)
            return inventory.rows_to_json(rows)

        return await _answer(run)

    @mcp.tool(annotations=_READ)
    async def service_logs(service: str, lines: int = 50, pod: str | None = None) -> dict[str, Any]:
        """The last `lines` lines of a service's log (its stdout and stderr) on each pod that has
        it, also after it stopped: the place to read why a start failed."""
        return await _answer(lambda: _logs(root, service, lines, pods(pod)))

    @mcp.tool(annotations=_READ)
    async def model_info(model: str, pod: str | None = None, hub: bool = True) -> dict[str, Any]:
        """What gpumod knows of a model: `model` is a Hugging Face repo id (org/name[@revision]),
        a preset or a service. Returns the presets serving it (how their VRAM is sized, per-GPU
        configs), the services of the specs using it (modes, pods, awake MiB per GPU), whether
        each pod has it in its model cache, and with `hub` the hub's file sizes and, from its
        config.json, `kv_mb_per_1k` (KV cache MiB per 1,000 tokens): with `weights_mb` the
        figures a Service can declare. An unreachable hub is reported in `hub.error`."""

        async def run() -> dict[str, Any]:
            return (await ops_model_info.model_info(root, model, pods(pod), hub=hub)).to_json()

        return await _answer(run)

    @mcp.tool(annotations=_READ)
    async def plan(pod: str | None = None) -> dict[str, Any]:
        """What `apply` would do now: per pod its steps (action, service, reason, wave), how full
        each GPU would be, and what does not fit. Touches nothing; also kept as the resource
        gpumod://plan/last."""

        async def run() -> dict[str, Any]:
            found = await ops_plan.plan(root, pods(pod))
            remember("plan", found.plan)
            return found.to_json()

        return await _answer(run)

    @mcp.tool(annotations=_CHANGE)
    async def apply(ctx: Context, pod: str | None = None) -> dict[str, Any]:
        """Make the pods match the specs: observe, plan, execute until converged (VRAM-safe
        order). Progress comes as notifications; the answer is the recap (converged, passes,
        every plan and step, problems). Needs a server started with --allow-apply."""
        may_change()

        async def run() -> dict[str, Any]:
            async with _Progress(ctx) as progress:
                found = await ops_apply.apply(root, pods(pod), reporter=progress)
            remember("apply", _ran(found))
            return found.to_json()

        return await _answer(run)

    @mcp.resource("gpumod://specs", mime_type="application/json")
    def specs_index() -> dict[str, Any]:
        """The spec files (YAML) this server reads; each one is gpumod://specs/{path}."""
        return {"root": str(root), "files": [f"gpumod://specs/{p}" for p in _spec_paths(root)]}

    @mcp.resource("gpumod://specs/{path*}", mime_type="application/yaml")
    def spec_file(path: str) -> str:
        """One spec file's YAML, as it is on disk now."""
        if path not in _spec_paths(root):
            raise ResourceError(f"no spec file {path} under {root}; see gpumod://specs")
        return (root / path if root.is_dir() else root).read_text()

    @mcp.resource("gpumod://plan/last", mime_type="application/json")
    def last_plan() -> dict[str, Any]:
        """The last plan a tool made or ran in this server (plan, status, verify, apply, switch)."""
        if not last:
            return {"tool": None, "made_at": None, "plan": None, "note": "no plan made yet; call the plan tool"}
        return last[0].to_json()

    return mcp


def _ran(result: ops_apply.ApplyResult) -> Plan | None:
    """The last plan an apply ran, or (nothing to do) the plan it found empty."""
    if result.plans:
        return result.plans[-1]
    return result.final.plan if result.final is not None else None


def _spec_paths(root: Path) -> list[str]:
    """The spec files as paths relative to the spec directory (a single file: its name)."""
    problems: list[Problem] = []
    files = spec_files(root, problems)
    if problems:
        raise ResourceError(SpecError(problems).details()[0])
    return [p.name if root.is_file() else p.relative_to(root).as_posix() for p in files]


async def _simulate(
    root: Path, pod: str | None, mode: str | None, add: Sequence[str], services: Sequence[str] | None
) -> dict[str, Any]:
    return (await ops_simulate.simulate(root, pod, mode=mode, add=add, services=services)).to_json()


async def _logs(root: Path, service: str, lines: int, pod_names: list[str] | None) -> dict[str, Any]:
    return (await ops_logs.logs(root, service, pod_names, lines)).to_json()
