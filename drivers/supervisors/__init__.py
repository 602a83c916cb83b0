"""Supervisors: what keeps a service's process alive on a pod, and how gpumod picks one.

A ``Supervisor`` (``base.py``) is chosen once per pod (``choose_supervisor``, read against the
pod's init); the executor only calls it. The ``process`` supervisor needs nothing on the client
(the pod agent spawns the service). The ``systemd`` supervisor's unit text is rendered here, on
the client (``render_unit``), and travels in the agent's payload; the pod agent only writes and
starts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gpumod.drivers.supervisors.base import ProcessSupervisor, Supervisor
from gpumod.drivers.supervisors.choice import choose_scope, choose_supervisor
from gpumod.drivers.supervisors.systemd import (
    SystemdSupervisor,
    env_file_path,
    log_path,
    render_unit,
    systemd_quote,
    unit_name,
)
from gpumod.drivers.supervisors.systemd_syntax import render_env_file

if TYPE_CHECKING:
    from gpumod.drivers.agent import PodAgent


def make_supervisor(
    agent: PodAgent, kind: str, scope: str = "system", *, template_dir: str | Path | None = None
) -> Supervisor:
    """The supervisor of ``kind`` (process | systemd, see ``choose_supervisor``) acting through
    ``agent``: the one place that maps a kind to its class."""
    if kind == "systemd":
        return SystemdSupervisor(agent, scope=scope, template_dir=template_dir)
    if kind == "process":
        return ProcessSupervisor(agent)
    raise ValueError(f"unknown supervisor {kind!r} (process | systemd)")


__all__ = [
    "ProcessSupervisor",
    "Supervisor",
    "SystemdSupervisor",
    "choose_scope",
    "choose_supervisor",
    "env_file_path",
    "log_path",
    "make_supervisor",
    "render_env_file",
    "render_unit",
    "systemd_quote",
    "unit_name",
]
