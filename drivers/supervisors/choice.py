"""Which supervisor runs a pod's services: the pod's ``supervisor:`` setting read against what the
pod agent observed about its init (``observe()["init"]``). Pure.

``auto`` picks systemd where PID 1 is systemd and its manager answers (``running``, ``degraded``
or ``starting``), and, for a non-root login, a user manager answers too (its units are
``--user`` units); everywhere else (containers whose PID 1 is a shell, tini, dumb-init...) the
process supervisor.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

SupervisorKind = Literal["systemd", "process"]
Scope = Literal["system", "user"]

__all__ = ["Scope", "SupervisorKind", "choose_scope", "choose_supervisor"]


def choose_scope(init_info: Mapping[str, Any]) -> Scope:
    """System units for root, ``--user`` units for anyone else."""
    return "system" if init_info.get("uid") == 0 else "user"


def choose_supervisor(pod_setting: str, init_info: Mapping[str, Any] | None) -> SupervisorKind:
    """``systemd`` | ``process`` for a pod whose spec says ``pod_setting`` (auto | systemd | process)."""
    if pod_setting in ("systemd", "process"):
        return pod_setting  # type: ignore[return-value]
    if pod_setting != "auto":
        raise ValueError(f"unknown supervisor {pod_setting!r} (auto | systemd | process)")
    info = init_info or {}
    if not info.get("systemd"):
        return "process"
    if choose_scope(info) == "user" and not info.get("user_systemd"):
        return "process"
    return "systemd"
