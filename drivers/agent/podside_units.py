"""The pod agent's systemd supervisor: start, stop and observe services as systemd units.

Why: on a pod whose init is systemd, units survive gpumod's SSH session, restart on failure and
are killed as a whole cgroup (vLLM's EngineCore child included). gpumod renders the unit text on
the client (``gpumod.drivers.supervisors.systemd.render_unit``); this part writes it only when it
changed (then ``daemon-reload``), writes the secrets to the unit's ``EnvironmentFile`` (0600), and
keeps the same JSON record as the process supervisor, plus ``supervisor``, ``unit`` and ``scope``.
Observing reads ONE ``systemctl show`` for all units of a scope; a service's processes are the pids
of its cgroup.

A part of the pod agent (see ``podside.py``): standard library only, Python 3.8 syntax.
"""

from __future__ import annotations

import os
import shlex
import signal
import time

if __name__ != "__gpumod_agent__":  # imported as a module: in the agent script these are defined above
    from gpumod.drivers.agent.podside_base import (
        POLL_S, PodState, Refused, _rotate, check_name, leader_state, port_in_use, scan_proc, service_record,
        session_members,
    )
    from gpumod.drivers.agent.podside_systemd import (
        SCOPES, SystemdError, cgroup_dir, cgroup_pids, ensure_linger, remove_file, resolve_exec, show_units,
        systemctl, unit_dir, write_if_changed, write_private,
    )
    from gpumod.drivers.probes.systemd import unit_summary
    from gpumod.drivers.supervisors.systemd_syntax import unit_name


def _unit_leader(summary: dict) -> str:
    """alive | restarting | starting | stopping | failed | not-found | gone: the unit's main process."""
    if summary["alive"]:
        return "alive"
    if summary["sub_state"] == "auto-restart":
        return "restarting"
    if summary["load_state"] == "not-found":
        return "not-found"
    return {"activating": "starting", "deactivating": "stopping", "failed": "failed"}.get(
        summary["active_state"], "gone")


def unit_entries(scope: str, members: list, procs: dict) -> dict:
    """Observe entries of systemd-supervised services: ONE ``systemctl show`` for all their units."""
    try:
        shown = show_units(scope, [record["unit"] for _, record in members])
    except SystemdError as err:
        return dict((name, {"meta": record, "alive": False, "leader": "unknown", "state": "", "pids": [],
                            "error": str(err)}) for name, record in members)
    now_mono, now = time.monotonic(), time.time()
    entries = {}
    for name, record in members:
        summary = unit_summary(shown.get(record["unit"], {}), now_mono)
        if summary["exited_ago_s"] is not None:
            summary["last_exit_at"] = now - summary["exited_ago_s"]
        main = summary["main_pid"]
        st = procs.get(main) if main else None
        meta = dict(record)
        meta["pid"] = main or None  # systemd restarts change the main pid
        entries[name] = {
            "meta": meta,
            "alive": summary["alive"],
            "leader": _unit_leader(summary),
            "state": st.state if st is not None else "",
            "pids": cgroup_pids(cgroup_dir(main, summary["control_group"], record.get("cgroup") or "")),
            "unit": summary,
        }
    return entries


def remove_unit_files(record: dict) -> bool:
    """Drop a unit's file (+ daemon-reload) and its secrets file; forget a failed state."""
    removed = remove_file(record.get("unit_path"))
    remove_file(record.get("env_file"))
    if removed:
        systemctl(record["scope"], ["daemon-reload"])
    systemctl(record["scope"], ["reset-failed", record["unit"]])
    return removed


def _log_tail(path: str, lines: int = 8) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 8192))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_unit(state: PodState, args: dict) -> dict:
    """Write the unit (only if its text changed, then daemon-reload), its secrets file, and start it."""
    launch = args["launch"]
    name = check_name(launch["name"], "service")
    argv = [str(a) for a in launch["argv"]]
    unit = unit_name(state.pod, name)
    if args.get("unit", unit) != unit:
        raise Refused(
            "unit %s does not belong to service %s of pod %s (%s)" % (args.get("unit"), name, state.pod, unit)
        )
    if not argv or not args.get("unit_text"):
        raise Refused("service %s: a systemd start needs the command line and the unit text" % name)
    scope = args.get("scope") or ("system" if os.geteuid() == 0 else "user")
    if scope not in SCOPES:
        raise Refused("unknown systemd scope %r (system | user)" % scope)
    state.ensure()
    warnings = []
    with state.lock():
        old = state.read(name) or {}
        procs = scan_proc()
        if old and old.get("supervisor") != "systemd":
            if leader_state(old, procs) == "alive" or session_members(old, procs):
                raise Refused(
                    "service %s is already running on this pod (pid %s); stop it first" % (name, old.get("pid"))
                )
        props = show_units(scope, [unit]).get(unit, {})
        current = unit_summary(props, time.monotonic())
        if current["alive"] and not current["crash_loop"]:
            raise Refused("service %s is already running on this pod (unit %s, pid %s); stop it first"
                          % (name, unit, current["main_pid"]))
        if current["active_state"] not in ("inactive", "failed", ""):  # crash loop: start afresh
            systemctl(scope, ["stop", unit], timeout=float(launch.get("stop_timeout_s") or 30.0) + 15.0)
        port = int(launch.get("port") or 0)
        if port_in_use(port):
            raise Refused("port %d of %s is already in use on the pod by a process gpumod does not manage; "
                          "stop that process or give %s another port" % (port, name, name))
        cwd = os.path.expanduser(launch["cwd"]) if launch.get("cwd") else None
        if cwd and not os.path.isdir(cwd):
            raise Refused("working directory %s of %s does not exist on the pod" % (cwd, name))
        if scope == "user":
            warning = ensure_linger(os.path.join(state.root, "linger-attempted"))
            if warning:
                warnings.append(warning)
        try:
            text = resolve_exec(str(args["unit_text"]), argv)
        except SystemdError as error:
            raise Refused("cannot start %s: %s" % (name, error)) from error
        env_file = None
        if args.get("env_file_text") is not None:
            env_file = state.env_file_path(name)
            write_private(env_file, str(args["env_file_text"]))
        log_path = state.log_path(name)
        _rotate(log_path)
        started_at = time.time()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(log_fd, ("\n=== gpumod %s: starting %s (systemd unit %s): %s\n" % (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)), name, unit, shlex.join(argv))).encode())
        finally:
            os.close(log_fd)
        path = os.path.join(unit_dir(scope), unit)
        try:
            changed = write_if_changed(path, text)
        except OSError as error:
            raise Refused("cannot write the unit file %s: %s" % (path, error.strerror or error)) from error
        reloaded = changed or props.get("NeedDaemonReload") == "yes"
        if reloaded:
            rc, _, err = systemctl(scope, ["daemon-reload"])
            if rc != 0:
                raise Refused("systemctl daemon-reload failed: %s" % err[-500:])
        systemctl(scope, ["reset-failed", unit])
        rc, _, err = systemctl(scope, ["start", unit])
        if rc != 0:
            remove_unit_files({"unit_path": path, "env_file": env_file, "scope": scope, "unit": unit})
            tail = _log_tail(log_path)
            raise Refused("cannot start %s: systemctl start %s failed: %s%s"
                          % (name, unit, err[-500:] or "exit %d" % rc, "\n" + tail if tail else ""))
        summary = unit_summary(show_units(scope, [unit]).get(unit, {}))
        main = summary["main_pid"]
        record = service_record(name, main or None, started_at, argv, launch, cwd, port, log_path, old)
        record.update({
            "supervisor": "systemd",
            "unit": unit,
            "scope": scope,
            "unit_path": path,
            "env_file": env_file,
            "cgroup": cgroup_dir(main, summary["control_group"]),
        })
        state.write(record)
    return {"pid": record["pid"], "started_at": started_at, "start_ticks": record["start_ticks"], "log": log_path,
            "unit": unit, "scope": scope, "unit_changed": changed, "reloaded": reloaded, "warnings": warnings}


def stop_unit(state: PodState, record: dict, timeout: float, forget: bool, result: dict) -> dict:
    """``systemctl stop`` (systemd TERMs the whole cgroup, KILLs after TimeoutStopSec), wait for
    inactive, then remove the unit file, daemon-reload, remove the secrets file and the record."""
    scope, unit = record["scope"], record["unit"]
    before = unit_summary(show_units(scope, [unit]).get(unit, {}))
    directory = cgroup_dir(before["main_pid"], before["control_group"], record.get("cgroup") or "")
    result["was_alive"] = before["alive"]
    result["pids"] = cgroup_pids(directory)
    rc, _, err = systemctl(scope, ["stop", unit], timeout=timeout + 15.0)
    deadline = time.monotonic() + 5.0
    while True:
        after = unit_summary(show_units(scope, [unit]).get(unit, {}))
        left = cgroup_pids(directory)
        if (after["active_state"] in ("inactive", "failed", "") and not left) or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    if left:  # systemd could not empty the cgroup: KILL what is left, by pid
        result["killed"] = True
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        left = _wait_pids_gone(directory, time.monotonic() + 5.0)
    result["killed"] = result["killed"] or after["result"] == "timeout"
    result["left"] = left
    result["stopped"] = after["active_state"] in ("inactive", "failed", "") and not left
    if rc != 0 and not result["stopped"]:
        result["error"] = err[-500:]
    if result["stopped"]:
        remove_unit_files(record)
        with state.lock():
            current = state.read(record["name"])
            if current is not None and current.get("started_at") == record.get("started_at"):
                if forget:
                    result["forgot"] = state.remove(record["name"])
                else:
                    current["stopped_at"] = time.time()
                    state.write(current)
    return result


def _wait_pids_gone(directory: str, deadline: float) -> list:
    while True:
        left = cgroup_pids(directory)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL_S)


def forget_unit(state: PodState, record: dict) -> dict:
    """Drop the record (and unit + secrets files) of a unit that no longer runs; the caller holds the lock."""
    summary = unit_summary(show_units(record["scope"], [record["unit"]]).get(record["unit"], {}))
    if summary["active_state"] not in ("inactive", "failed", ""):
        raise Refused("service %s is still %s (unit %s); stop it instead"
                      % (record["name"], summary["active_state"], record["unit"]))
    remove_unit_files(record)
    return {"forgot": state.remove(record["name"])}
