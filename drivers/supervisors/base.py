"""The supervisor seam: what keeps a pod's services running, chosen ONCE per pod.

``reconciler/wiring.py`` picks one (``PodHandle.supervisor_for``) from the pod's ``supervisor:``
setting and what the pod agent observed about its init; the executor then only calls
``start``/``stop`` and never asks which one it has. Both go through the pod agent:

- ``ProcessSupervisor``: the agent spawns the service detached in its own session, its secrets
  in its environment.
- ``SystemdSupervisor`` (``supervisors/systemd.py``): the unit is rendered here, on the client,
  and the agent installs and starts it; its secrets go to the unit's ``EnvironmentFile``.

``stop`` is the same call for both: the pod agent reads the service's record, which says which
supervisor started it (so a service started before the pod's supervisor changed stops right).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Protocol

from gpumod.drivers.base import Launch

if TYPE_CHECKING:
    from gpumod.drivers.agent import PodAgent

__all__ = ["ProcessSupervisor", "Supervisor"]


class Supervisor(Protocol):
    kind: str  # process | systemd (for messages and logs, never to branch on)

    async def start(self, launch: Launch, secret_env: Mapping[str, str] | None = None) -> dict:
        """Start and record the service; the agent's answer (``warnings``: things to tell the user)."""
        ...

    async def stop(self, name: str, timeout_s: float | None = None, *, forget: bool = True) -> dict:
        """TERM, then KILL after ``timeout_s`` (None: the one in the service's record)."""
        ...


class AgentSupervisor:
    """What both supervisors share: they act through the pod's agent; stop reads the record."""

    kind = ""

    def __init__(self, agent: PodAgent) -> None:
        self.agent = agent

    async def stop(self, name: str, timeout_s: float | None = None, *, forget: bool = True) -> dict:
        return await self.agent.stop(name, timeout_s, forget=forget)


class ProcessSupervisor(AgentSupervisor):
    """The pod agent spawns the service itself (``setsid``, output to the service's log)."""

    kind = "process"

    async def start(self, launch: Launch, secret_env: Mapping[str, str] | None = None) -> dict:
        return await self.agent.start(launch, secret_env=secret_env)
