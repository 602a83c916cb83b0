"""Supervisors: what keeps a service's process alive on a pod, and how gpumod picks one.

The ``process`` supervisor needs nothing on the client (the pod agent spawns the service). The
``systemd`` supervisor's unit text is rendered here, on the client (``render_unit``), and travels
in the agent's payload; the pod agent only writes and starts it.
"""

from gpumod.drivers.supervisors.choice import choose_scope, choose_supervisor
from gpumod.drivers.supervisors.systemd import (
    env_file_path,
    log_path,
    render_unit,
    systemd_quote,
    unit_name,
)
from gpumod.drivers.supervisors.systemd_syntax import render_env_file

__all__ = [
    "choose_scope",
    "choose_supervisor",
    "env_file_path",
    "log_path",
    "render_env_file",
    "render_unit",
    "systemd_quote",
    "unit_name",
]
