"""Observe: turn what a pod agent printed into an ``ObservedPod``.

``observe_pod`` makes ONE round trip (the agent's ``observe``); ``parse_observation`` is pure
and does the reading: nvidia-smi's XML into GPUs, each service record + liveness + probe answers
into a status (through its driver's ``parse``), and compute-app VRAM split into what gpumod's
services use (by session pids) and what foreign processes use.

Status of a recorded service (``service_status``, also the executor's reading while it waits
for a service it started to be ready):
  process gone (or a zombie)           → failed     (record present, process not)
  alive, refused / loading             → starting
  alive, ready and asleep              → sleeping   (with its sleep level)
  alive, ready                         → running
  alive, the driver reads an error     → unhealthy
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Mapping

from gpumod.core.model import ObservedPod, ObservedService, Status
from gpumod.drivers.agent import PodAgent
from gpumod.drivers.base import HttpAnswer, ProbedState
from gpumod.drivers.command import CommandDriver
from gpumod.drivers.probes.nvidia_smi import parse_xml, uuid_to_index
from gpumod.drivers.registry import driver_for
from gpumod.errors import GpumodError, PodError

__all__ = ["observe_pod", "parse_observation", "service_status"]

_READINESS_STATUS: dict[str, Status] = {
    "refused": "starting",
    "loading": "starting",
    "error": "unhealthy",
}


async def observe_pod(agent: PodAgent, setup: Mapping[str, Any] | None = None) -> ObservedPod:
    """Observe one pod; an unreachable pod or a failing agent gives ``reachable=False``, never raises.

    ``setup``: the setup probe's arguments of a pod with ``setup:``; its facts are read in the
    same round trip and land, parsed, in ``ObservedPod.setup`` (a ``SetupFacts``)."""
    try:
        raw = await agent.observe(setup=setup)
    except PodError as err:
        return ObservedPod(name=agent.pod, reachable=False, error=str(err))
    observed = parse_observation(agent.pod, raw)
    if setup is not None:
        from gpumod.drivers.provision.facts import parse_facts

        try:
            facts = parse_facts(json.dumps(raw.get("setup")))
        except (ValueError, TypeError, AttributeError) as err:
            return replace(observed, reachable=False, error=f"the pod's setup facts are unreadable: {err}")
        observed = replace(observed, setup=facts)
    return observed


def parse_observation(pod: str, raw: Mapping[str, Any]) -> ObservedPod:
    smi = raw.get("smi") or {}
    gpus, apps = parse_xml(smi.get("stdout", "")) if smi.get("ok") else ((), [])
    error = "" if smi.get("ok") else f"nvidia-smi failed: {(smi.get('stderr') or '').strip()[:300]}"
    index_of = uuid_to_index(gpus)

    services_raw: Mapping[str, Any] = raw.get("services") or {}
    owner: dict[int, str] = {}
    for name, entry in services_raw.items():
        for pid in entry.get("pids") or []:
            owner[int(pid)] = name

    used: dict[str, dict[int, int]] = {}
    foreign: dict[int, int] = {}
    for pid, mb, uuid in apps:
        gpu = index_of.get(uuid)
        if gpu is None:
            continue
        if pid in owner:
            per_gpu = used.setdefault(owner[pid], {})
            per_gpu[gpu] = per_gpu.get(gpu, 0) + mb
        else:
            foreign[gpu] = foreign.get(gpu, 0) + mb

    services = tuple(
        _service(name, services_raw[name], used.get(name, {})) for name in sorted(services_raw)
    )
    return ObservedPod(
        name=pod,
        reachable=True,
        error=error,
        gpus=gpus,
        services=services,
        foreign_mb=tuple(sorted(foreign.items())),
        observed_at=float(raw.get("now") or 0.0),
        init=tuple(sorted((str(k), v) for k, v in (raw.get("init") or {}).items())),
    )


def _service(name: str, entry: Mapping[str, Any], vram: dict[int, int]) -> ObservedService:
    meta: Mapping[str, Any] = entry.get("meta") or {}
    status, sleep_level, message = service_status(entry)
    unit: Mapping[str, Any] = entry.get("unit") or {}
    failures = int(meta.get("failures") or 0)
    last_failure_at = _float(meta.get("last_failure_at"))
    if unit.get("crash_loop"):  # systemd keeps restarting it: back off like a failed start
        failures = max(failures, int(unit.get("nrestarts") or 0), 1)
        last_failure_at = last_failure_at or _float(unit.get("last_exit_at"))
    return ObservedService(
        name=name,
        status=status,
        spec_hash=str(meta.get("spec_hash") or ""),
        gpus=tuple(int(g) for g in meta.get("gpus") or ()),
        pid=meta.get("pid") if isinstance(meta.get("pid"), int) else None,
        port=meta.get("port") if isinstance(meta.get("port"), int) else None,
        started_at=_float(meta.get("started_at")),
        sleep_level=sleep_level,
        vram_mb=tuple(sorted(vram.items())),
        failures=failures,
        last_failure_at=last_failure_at,
        message=message,
        last_error=str(meta.get("last_error") or ""),
        last_log_line=str(meta.get("last_log_line") or ""),
        spec_fields=_spec_fields(meta),
        depends_on=_recorded_deps(meta.get("extra")),
    )


def _recorded_deps(extra: Any) -> tuple[str, ...]:
    """The ``depends_on`` the service was started with (records from before it was kept: none)."""
    deps = extra.get("depends_on") if isinstance(extra, Mapping) else None
    return tuple(str(d) for d in deps) if isinstance(deps, list) else ()


def service_status(entry: Mapping[str, Any]) -> tuple[Status, str | None, str]:
    """(status, sleep level, message) of one service entry of the agent's observe answer."""
    meta: Mapping[str, Any] = entry.get("meta") or {}
    if entry.get("error"):
        return "failed", None, str(entry["error"])
    unit: Mapping[str, Any] = entry.get("unit") or {}
    if unit.get("crash_loop"):
        n = int(unit.get("nrestarts") or 0)
        states = f"{unit.get('active_state', '?')}/{unit.get('sub_state', '?')}, result {unit.get('result', '?')}"
        return "failed", None, f"crash loop: systemd restarted it {n} times ({states})"
    if not entry.get("alive"):
        leader = entry.get("leader") or "gone"
        left = entry.get("pids") or []
        why = {"zombie": "the process exited (zombie)", "reused": "the process is gone (pid reused)"}.get(
            leader, "the process is gone"
        )
        if left:
            why += f"; {len(left)} of its processes are still alive"
        return "failed", None, why
    if "probes" not in entry or not meta.get("probes"):
        level = meta.get("sleep_level")
        return ("sleeping" if level else "running"), level, "not probed"
    answers = {
        str(key): HttpAnswer(int(a.get("status") or 0), str(a.get("body") or ""))
        for key, a in (entry.get("probes") or {}).items()
    }
    state = _parse(str(meta.get("driver") or ""), str(meta.get("sleep") or "none"), answers)
    if state.readiness == "ready":
        if state.sleep_level:
            return "sleeping", state.sleep_level, state.detail
        return "running", None, state.detail
    return _READINESS_STATUS.get(state.readiness, "unhealthy"), None, state.detail


def _parse(driver: str, sleep: str, answers: dict[str, HttpAnswer]) -> ProbedState:
    try:
        reader = driver_for(driver)
    except GpumodError:
        reader = CommandDriver(driver or "command")  # unknown driver: its health probe still tells
    return reader.parse(sleep, answers)


def _spec_fields(meta: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The per-field digests gpumod recorded at start (``extra.spec_fields``); () for old records."""
    extra = meta.get("extra")
    fields = extra.get("spec_fields") if isinstance(extra, Mapping) else None
    if not isinstance(fields, Mapping):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in fields.items()))


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None

