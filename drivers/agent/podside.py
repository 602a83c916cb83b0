"""The pod agent: everything gpumod does ON a pod, as one stdlib-only script (Python >= 3.8).

Why one script: gpumod must work on a bare rented pod with nothing installed but Python, over SSH
as well as locally, without putting secrets in argv. So ``gpumod.drivers.agent.PodAgent`` sends
the agent plus a JSON payload on the STDIN of ``python3 -S -c BOOT`` (``boot.py``); BOOT execs it with
``__name__ == "__gpumod_agent__"`` and ``PAYLOAD`` set. The script does one operation and prints
ONE JSON document on stdout (``{"error": ...}`` with exit status 2 for a refused operation).
The compiled script is cached on the pod (``boot.py``), so most calls send only the payload.

The agent is several parts, concatenated in this order by ``agent_script()`` (each part imports
the earlier ones normally when it is imported as a module, e.g. by tests):
  probes/systemd.py              reading ``systemctl show`` (shared with gpumod)
  supervisors/systemd_syntax.py  systemd quoting (shared with gpumod)
  agent/podside_base.py          refusals, /proc liveness, the state dir, nvidia-smi, HTTP
  agent/podside_systemd.py       systemctl, unit files, cgroups, lingering, init detection
  agent/podside_units.py         the systemd supervisor: start/stop/observe units
  provision/podside_setup.py     the setup facts of a pod with ``setup:`` (issue 9)
  agent/podside.py               this file: the process supervisor, the operations, main

On the pod, under ``<state_dir>/pods/<pod>/``:
  services/<name>.json   the record of a started service (mode 0600, written by atomic rename)
  logs/<name>.log        its stdout+stderr (appended)
  secrets/<name>.env     a systemd service's secrets, its EnvironmentFile (dir 0700, file 0600)
  .lock                  flock for read-modify-write of records
  ops.lock               flock held shared by every operation that changes the pod (see lockholder.py)

Two supervisors, chosen at start and written in the record. ``process``: the service is a detached
session of its own (setsid); liveness and members from /proc. ``systemd``: the service is the unit
``gpumod-<pod>-<name>.service``; liveness, restarts and members (its cgroup) from ``systemctl show``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

if __name__ != "__gpumod_agent__":  # imported as a module: in the agent script these are defined above
    from gpumod.drivers.agent.podside_base import (  # noqa: F401 - parse_stat, read_stat: tests read them here
        GPU_QUERY, POLL_S, PROBE_TIMEOUT_S, PROTECTED_FIELDS, PodState, Refused, _rotate, boot_id,
        check_name, expand_home, http_call, leader_state, parse_stat, port_in_use, read_stat, run_smi,
        scan_proc, service_record, session_members, smi_xml, SMI_FORMAT,
    )
    from gpumod.drivers.agent.podside_systemd import SystemdError, init_info
    from gpumod.drivers.agent.podside_units import forget_unit, start_unit, stop_unit, unit_entries
    from gpumod.drivers.supervisors.systemd_syntax import env_file_value
    from gpumod.drivers.provision.podside_setup import setup_facts


def service_api_key(record: dict):
    """The API key a service was started with (``expose``/``api_key``), read on the pod where its
    supervisor put it: the unit's 0600 EnvironmentFile, else the process's environment (same
    user). So probes and sleep/wake calls can authenticate without gpumod sending the key again."""
    name = (record.get("extra") or {}).get("api_key_env")
    if not name:
        return None
    try:
        if record.get("env_file"):
            with open(record["env_file"], encoding="utf-8") as f:
                return env_file_value(f.read(), name)
        with open("/proc/%d/environ" % int(record.get("pid") or 0), "rb") as f:
            data = f.read()
    except (OSError, ValueError, TypeError):
        return None
    prefix = name.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix):].decode("utf-8", "replace")
    return None


# -- operations -----------------------------------------------------------------------------------


WAIT_LIMIT_S = 5.0  # the longest an observe waits for a change (the caller asks for less)


def op_observe(state: PodState, args: dict) -> dict:
    """One observation. With ``unchanged`` ({service: the ``seen`` digest of its last reading, or
    ""}), every entry carries its ``seen`` digest, and with ``wait_s`` the agent observes again
    every ``POLL_S`` until one of those services reads differently or ``wait_s`` has passed (a
    health wait polls here rather than with one agent process per poll); the last one is returned."""
    found = observe_once(state, args)
    unchanged = args.get("unchanged") or {}
    deadline = time.monotonic() + min(float(args.get("wait_s") or 0.0), WAIT_LIMIT_S)
    while unchanged and time.monotonic() < deadline and all(
        (found["services"].get(name) or {}).get("seen") == seen for name, seen in unchanged.items()
    ):
        time.sleep(max(0.0, min(POLL_S, deadline - time.monotonic())))
        found = observe_once(state, args)
    if args.get("gpus_after"):  # the GPUs as this reading leaves them (a fill wave's VRAM check)
        found["gpus_after"] = run_smi(GPU_QUERY, SMI_FORMAT)
    return found


def seen_digest(entry: dict) -> str:
    """A digest of what a reading of one service entry depends on (its record, liveness, probe
    answers, unit state), without what moves by itself (process state letter, session pids,
    uptimes): equal digests, equal readings."""
    import zlib  # only health waits ask for digests

    unit = dict(entry.get("unit") or {})
    unit.pop("uptime_s", None)
    unit.pop("exited_ago_s", None)
    view = [entry.get(k) for k in ("meta", "alive", "leader", "error", "probes")] + [unit]
    return "%08x" % (zlib.crc32(json.dumps(view, sort_keys=True).encode()) & 0xFFFFFFFF)


def observe_once(state: PodState, args: dict) -> dict:
    names = args.get("names")
    probe = args.get("probe", True)
    procs = scan_proc()
    entries: dict = {}
    units: dict = {}  # scope -> [(name, record)] of the systemd-supervised services
    for name in state.names():
        if names is not None and name not in names:
            continue
        try:
            record = state.read(name)
        except (OSError, ValueError) as err:
            entries[name] = {"meta": {"name": name}, "alive": False, "state": "", "pids": [],
                             "error": str(err) if isinstance(err, Refused) else "unreadable record: %s" % err}
            continue
        if record is None:
            continue
        if record.get("supervisor") == "systemd":
            units.setdefault(record.get("scope") or "system", []).append((name, record))
            continue
        lead = leader_state(record, procs)
        st = procs.get(record.get("pid"))
        entries[name] = {
            "meta": record,
            "alive": lead == "alive",
            "leader": lead,
            "state": st.state if st is not None and lead in ("alive", "zombie") else "",
            "pids": session_members(record, procs),
        }
    for scope in sorted(units):
        entries.update(unit_entries(scope, units[scope], procs))
    todo = []  # (name, key, port, path, grep, api key)
    for name in sorted(entries):
        entry, record = entries[name], entries[name]["meta"]
        if probe and "error" not in entry:
            entry["probes"] = {}
            if entry["alive"] and record.get("port"):
                api_key = service_api_key(record)
                for p in record.get("probes") or []:
                    todo.append((name, p["key"], int(record["port"]), p["path"], p.get("grep") or "", api_key))
    init = init_info() if args.get("init", True) else None
    smi = args.get("gpus", True)  # health polls of one service skip nvidia-smi
    calls: list = [smi_xml] if smi else []
    calls += [
        (lambda port=port, path=path, grep=grep, k=k: http_call(port, "GET", path, None, PROBE_TIMEOUT_S, grep, k))
        for _, _, port, path, grep, k in todo
    ]
    results = at_once(calls)
    for (name, key, _, _, _, _), answer in zip(todo, results[1:] if smi else results):
        entries[name]["probes"][key] = answer
    if args.get("unchanged"):
        for entry in entries.values():
            entry["seen"] = seen_digest(entry)
    found = {
        "now": time.time(),
        "hostname": os.uname().nodename,  # gethostname(2); the socket module costs more
        "boot_id": boot_id(),
        "smi": results[0] if smi else None,  # nvidia-smi -q -x
        "services": entries,
        "init": init,
    }
    if args.get("setup") is not None:  # a pod with setup: (podside_setup.py, an earlier part)
        found["setup"] = setup_facts(args["setup"])
    return found


def at_once(calls: list, limit: int = 16) -> list:
    """The results of ``calls`` run in threads, at most ``limit`` at a time (plain threads:
    concurrent.futures would import logging and more on every agent start)."""
    if len(calls) <= 1:
        return [call() for call in calls]
    results = [None] * len(calls)
    errors = []

    def run(i):
        try:
            results[i] = calls[i]()
        except BaseException as err:  # re-raised below, in the caller's thread
            errors.append(err)

    for start in range(0, len(calls), limit):
        threads = [threading.Thread(target=run, args=(i,)) for i in range(start, min(len(calls), start + limit))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return results


DEFAULT_STOP_TIMEOUT_S = 30.0  # for a record that holds no stop_timeout_s

# What a process-supervised service inherits from the agent's environment (as a systemd unit gets
# a fresh one from its manager): where things are and the locale. Everything else is declared:
# the launch's env (the driver's, the spec's, a sim pod's) and the service's own secrets. So a
# token exported in the shell that runs gpumod never reaches a service that did not ask for it.
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR")


def service_env(environ, launch_env, secret_env) -> dict:
    """The whole environment of a service started by the process supervisor."""
    env = dict((k, v) for k, v in environ.items() if k in INHERITED_ENV or k.startswith("LC_"))
    env.update((str(k), str(v)) for k, v in launch_env or [])
    env.update((str(k), str(v)) for k, v in (secret_env or {}).items())
    return env


def op_start(state: PodState, args: dict) -> dict:
    if args.get("supervisor", "process") == "systemd":
        return start_unit(state, args)
    if args.get("supervisor", "process") != "process":
        raise Refused("unknown supervisor %r (systemd | process)" % args.get("supervisor"))
    launch = args["launch"]
    name = check_name(launch["name"], "service")
    argv = expand_home([str(a) for a in launch["argv"]])
    if not argv:
        raise Refused("service %s has an empty command line" % name)
    state.ensure()
    with state.lock():
        old = state.read(name) or {}
        procs = scan_proc()
        if old:
            if leader_state(old, procs) == "alive":
                raise Refused(
                    "service %s is already running on this pod (pid %s); stop it first" % (name, old.get("pid"))
                )
            left = session_members(old, procs)
            if left:
                raise Refused("processes of the previous %s are still alive (pids %s); stop it first"
                              % (name, " ".join(map(str, left))))
        port = int(launch.get("port") or 0)
        if port_in_use(port):
            raise Refused("port %d of %s is already in use on the pod by a process gpumod does not manage; "
                          "stop that process or give %s another port" % (port, name, name))
        env = service_env(os.environ, launch.get("env"), args.get("secret_env"))
        cwd = os.path.expanduser(launch["cwd"]) if launch.get("cwd") else None
        if cwd and not os.path.isdir(cwd):
            raise Refused("working directory %s of %s does not exist on the pod" % (cwd, name))
        log_path = state.log_path(name)
        _rotate(log_path)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            started_at = time.time()
            header = "\n=== gpumod %s: starting %s: %s\n" % (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)), name, shlex.join(argv))
            os.write(log_fd, header.encode())
            try:
                child = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
                    env=env, cwd=cwd, start_new_session=True, close_fds=True,
                )
            except OSError as err:
                os.write(log_fd, ("=== gpumod: cannot run %s: %s\n" % (argv[0], err)).encode())
                raise Refused("cannot start %s: %s: %s" % (name, argv[0], err.strerror or err)) from err
        finally:
            os.close(log_fd)
        record = service_record(name, child.pid, started_at, argv, launch, cwd, port, log_path, old)
        state.write(record)
    return {"pid": child.pid, "started_at": started_at, "start_ticks": record["start_ticks"], "log": log_path}


def _signal(record: dict, pids: list, sig) -> None:
    try:
        os.killpg(record["pid"], sig)
    except OSError:
        pass
    for pid in pids:  # members that left the process group still belong to the session
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _wait_gone(record: dict, deadline: float) -> list:
    while True:
        left = session_members(record, scan_proc())
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL_S)


def op_stop(state: PodState, args: dict) -> dict:
    name = check_name(args["name"], "service")
    forget = args.get("forget", True)
    record = state.read(name)
    result = {"stopped": False, "killed": False, "was_alive": False, "pids": [], "left": [], "forgot": False}
    if record is None:
        result["missing"] = True
        return result
    timeout = args.get("timeout_s")  # none given: what the service was started with
    timeout = float(timeout if timeout is not None else record.get("stop_timeout_s") or DEFAULT_STOP_TIMEOUT_S)
    if record.get("supervisor") == "systemd":
        return stop_unit(state, record, timeout, forget, result)
    procs = scan_proc()
    lead = leader_state(record, procs)
    members = session_members(record, procs)
    result["was_alive"] = lead == "alive"
    result["pids"] = members
    if members:
        _signal(record, members, signal.SIGTERM)
        left = _wait_gone(record, time.monotonic() + timeout)
        if left:
            result["killed"] = True
            _signal(record, left, signal.SIGKILL)
            left = _wait_gone(record, time.monotonic() + 5.0)
        result["left"] = left
        result["stopped"] = not left
    else:
        result["stopped"] = True
    if result["stopped"]:
        with state.lock():
            current = state.read(name)
            if current is not None and current.get("pid") == record.get("pid"):
                if forget:
                    result["forgot"] = state.remove(name)
                else:
                    current["stopped_at"] = time.time()
                    state.write(current)
    return result


def _key_on_port(state: PodState, port: int):
    """The API key of the service recorded on ``port`` (sleep/wake/load calls name only the port)."""
    for name in state.names():
        try:
            record = state.read(name)
        except (OSError, ValueError):
            continue
        if record is not None and record.get("port") == port:
            return service_api_key(record)
    return None


def op_http(state: PodState, args: dict) -> dict:
    port = int(args["port"])
    key = _key_on_port(state, port)
    answers = []
    for call in args["calls"]:
        timeout = float(call.get("timeout_s", 30.0))
        answer = http_call(port, call["method"], call["path"], call.get("body"), timeout, "", key)
        answers.append(answer)
        if answer["status"] not in call.get("ok_status", [200]):
            break
    then = args.get("then_record")  # {name, fields}: written in that record once every call answered ok
    calls = args["calls"]
    found: dict = {"answers": answers}
    if then and len(answers) == len(calls) and all(
        a["status"] in c.get("ok_status", [200]) for a, c in zip(answers, calls)
    ):
        found["record"] = op_update_meta(state, then)
    if args.get("gpus_after"):  # the GPUs as the calls leave them (a fill wave's VRAM check)
        found["gpus_after"] = run_smi(GPU_QUERY, SMI_FORMAT)
    return found


def op_gpus(state: PodState, args: dict) -> dict:
    return run_smi(GPU_QUERY, SMI_FORMAT)


def op_update_meta(state: PodState, args: dict) -> dict:
    name = check_name(args["name"], "service")
    fields = args.get("fields") or {}
    bad = [k for k in fields if k in PROTECTED_FIELDS]
    if bad:
        raise Refused("fields %s of a record cannot be changed" % ", ".join(bad))
    with state.lock():
        record = state.read(name)
        if record is None:
            raise Refused("no record of service %s on this pod" % name)
        record.update(fields)
        if args.get("bump_failures"):
            record["failures"] = int(record.get("failures") or 0) + 1
        state.write(record)
    return record


def op_logs(state: PodState, args: dict) -> dict:
    lines = max(1, int(args.get("lines", 50)))
    path = state.log_path(check_name(args["name"], "service"))
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            want = min(size, max(64 * 1024, lines * 512))
            f.seek(size - want)
            data = f.read(want)
    except FileNotFoundError:
        return {"text": ""}
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return {"text": "\n".join(text)}


def op_forget(state: PodState, args: dict) -> dict:
    name = check_name(args["name"], "service")
    with state.lock():
        record = state.read(name)
        if record is None:
            return {"forgot": False}
        if record.get("supervisor") == "systemd":
            return forget_unit(state, record)
        procs = scan_proc()
        if leader_state(record, procs) == "alive" or session_members(record, procs):
            raise Refused("service %s is still running (pid %s); stop it instead" % (name, record.get("pid")))
        return {"forgot": state.remove(name)}


CHANGING_OPS = ("start", "stop", "http", "update_meta", "forget")  # run under PodState.operation()

OPS = {
    "observe": op_observe,
    "start": op_start,
    "stop": op_stop,
    "http": op_http,
    "gpus": op_gpus,
    "update_meta": op_update_meta,
    "logs": op_logs,
    "forget": op_forget,
}


def sim_ready(sim: dict):
    """A pod whose GPUs are simulated: when ``<dir>/gpus.json`` lists ``sim["gpus"]`` and the
    nvidia-smi stand-in is there, put it on PATH for this call and its children and say where it
    is; None when the full set-up (``python -m gpumod.sim.pod``) is needed first. Folded into
    the call so that a pod costs one round trip."""
    d = os.path.expanduser(sim["dir"])
    b = os.path.join(d, "bin")
    try:
        with open(os.path.join(d, "gpus.json")) as f:
            have = [[g["name"], g["memory_mb"]] for g in json.load(f)["gpus"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if have != [list(g) for g in sim.get("gpus") or []] or not os.access(os.path.join(b, "nvidia-smi"), os.X_OK):
        return None
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = b + os.pathsep + path
    os.environ["GPUMOD_SIM_DIR"] = d
    return {"bin": b, "dir": d, "path": path, "python": sys.executable}


def main(payload: dict) -> int:
    for key, value in (payload.get("env") or {}).items():
        os.environ[str(key)] = str(value)
    sim = payload.get("sim")
    try:
        info = sim_ready(sim) if sim else None
        if sim and info is None:
            sys.stdout.write(json.dumps({"sim_setup": "needed"}) + "\n")
            return 4
        op = OPS.get(payload.get("op") or "")
        if op is None:
            raise Refused("unknown operation %r" % payload.get("op"))
        state = PodState(payload["state_dir"], payload["pod"])
        if payload.get("op") in CHANGING_OPS:
            with state.operation():
                result = op(state, payload.get("args") or {})
        else:
            result = op(state, payload.get("args") or {})
    except (Refused, SystemdError) as err:
        sys.stdout.write(json.dumps({"error": str(err)}) + "\n")
        return 2
    sys.stdout.write(json.dumps({"sim": info, "result": result} if sim else result) + "\n")
    return 0


if __name__ == "__gpumod_agent__":
    sys.exit(main(PAYLOAD))  # type: ignore[name-defined]  # noqa: F821 - set by BOOT
elif __name__ == "__main__":  # debugging with gpumod installed: python3 podside.py < payload.json
    sys.exit(main(json.load(sys.stdin)))
