"""``logs``: the last lines of a service's log on each pod that has it, and following them.

A service's log is still there after it stopped, so a failed start can be read afterwards.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.agent.follow import follow_log
from gpumod.errors import GpumodError
from gpumod.ops.snapshot import observe_fleet, select_pods
from gpumod.spec import load_specs
from gpumod.wiring import Fleet

__all__ = ["LogsResult", "logs"]


@dataclass(frozen=True)
class LogsResult:
    service: str
    pods: Mapping[str, str]  # pod -> the log's last lines

    def to_json(self) -> dict[str, Any]:
        pods = {name: {"lines": text.splitlines()} for name, text in sorted(self.pods.items())}
        return {"service": self.service, "pods": pods}


async def logs(
    spec_dir: str | Path,
    service: str,
    pod_names: Sequence[str] | None = None,
    lines: int = 50,
    *,
    follow: Callable[[str, str], None] | None = None,
) -> LogsResult:
    """The last lines of a service's log on each selected pod that has it: a service that runs
    there, or whose log is still there after it stopped.

    With ``follow``, the last lines and then every new line of each of those logs go to it until
    the caller is cancelled (Ctrl+C); it gets the pod's name ("" when only one pod has the log)
    and the line."""
    if lines < 1:  # the CLI's --lines refuses it too; a face passing it on (MCP) must not get "everything"
        raise GpumodError(f"lines must be 1 or more, got {lines}", hint="ask for the last N lines, N >= 1")
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    found: dict[str, str] = {}
    async with Fleet(pods) as fleet:
        observed = await observe_fleet(fleet)
        known = specs.service(service) is not None or any(o.service(service) for o in observed)
        if not known:
            raise GpumodError(
                f"no service named {service} in the specs or on the pods",
                hint=f"services: {', '.join(sorted(s.name for s in specs.services)) or 'none'}",
            )
        for obs in observed:
            if not obs.reachable:
                continue
            text = await fleet.handles[obs.name].agent.logs(service, lines)
            if obs.service(service) is not None or text.strip():
                found[obs.name] = text
        if not found:
            unreachable = [f"{o.name} ({o.why_unreachable})" for o in observed if not o.reachable]
            raise GpumodError(
                f"no pod has a log of service {service} (it has not run on the selected pods)",
                hint="unreachable: " + ", ".join(unreachable) if unreachable else "see `gpumod status`",
            )
        if follow is not None:
            many = len(found) > 1
            await asyncio.gather(
                *(_follow(fleet.handles[name].agent, service, lines, follow, many) for name in found)
            )
    return LogsResult(service, found)


async def _follow(agent: PodAgent, service: str, lines: int, emit: Callable[[str, str], None], named: bool) -> None:
    async for line in follow_log(agent, service, lines):
        emit(agent.pod if named else "", line)
