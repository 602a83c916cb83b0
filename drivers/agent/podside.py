"""The pod agent: everything gpumod does ON a pod, as one stdlib-only script (Python >= 3.8).

Why one script: gpumod must work on a bare rented pod with nothing installed but Python, over SSH
as well as locally, without putting secrets in argv. So ``gpumod.drivers.agent.PodAgent`` sends
this file plus a JSON payload on the STDIN of ``python3 -c BOOT``; BOOT execs it with
``__name__ == "__gpumod_agent__"`` and ``PAYLOAD`` set. The script does one operation and prints
ONE JSON document on stdout (``{"error": ...}`` with exit status 2 for a refused operation).

The file is also importable, so tests can call its helpers directly.

On the pod, under ``<state_dir>/pods/<pod>/``:
  services/<name>.json   the record of a started service (mode 0600, written by atomic rename)
  logs/<name>.log        its stdout+stderr (appended)
  .lock                  flock for read-modify-write of records

Liveness is read from /proc, never from ``kill -0``: PID 1 on many pods does not reap orphans, so
a dead service may linger as a zombie. A pid is trusted only while its start time (field 22 of
/proc/PID/stat) and the boot id still match the record (pid reuse).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

GPU_QUERY = "--query-gpu=index,uuid,name,memory.total,memory.used"
APPS_QUERY = "--query-compute-apps=pid,used_memory,gpu_uuid"
SMI_FORMAT = "--format=csv,noheader,nounits"
BODY_LIMIT = 64 * 1024
GREP_READ_LIMIT = 16 * 1024 * 1024
LOG_ROTATE_BYTES = 64 * 1024 * 1024
PROBE_TIMEOUT_S = 1.0
POLL_S = 0.05
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PROTECTED_FIELDS = ("name", "pid", "start_ticks", "boot_id")

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


class Refused(Exception):
    """An operation the agent declines; reported as {"error": message}."""


# -- /proc ---------------------------------------------------------------------------------------


class ProcStat(object):
    __slots__ = ("pid", "state", "ppid", "pgrp", "session", "start_ticks")

    def __init__(self, pid, state, ppid, pgrp, session, start_ticks):
        self.pid = pid
        self.state = state
        self.ppid = ppid
        self.pgrp = pgrp
        self.session = session
        self.start_ticks = start_ticks

    @property
    def live(self) -> bool:
        return self.state not in ("Z", "X", "x")


def parse_stat(text: str):
    """Parse /proc/PID/stat; the command name may hold spaces and parentheses."""
    try:
        head, _, tail = text.rpartition(")")
        pid = int(head.split("(", 1)[0])
        fields = tail.split()
        # fields[0] is field 3 (state); field N is fields[N - 3]
        return ProcStat(pid, fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))
    except (ValueError, IndexError):
        return None


def read_stat(pid: int):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return parse_stat(f.read())
    except (OSError, ValueError):
        return None


def scan_proc() -> dict:
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = read_stat(int(entry))
            if st is not None:
                procs[st.pid] = st
    return procs


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def leader_state(record: dict, procs: dict) -> str:
    """alive | zombie | gone | reused, for the recorded leader pid."""
    if record.get("boot_id") and record.get("boot_id") != boot_id():
        return "gone"  # the machine rebooted since the start
    pid = record.get("pid")
    st = procs.get(pid) if isinstance(pid, int) else None
    if st is None:
        return "gone"
    if st.start_ticks != record.get("start_ticks"):
        return "reused"
    return "alive" if st.live else "zombie"


def session_members(record: dict, procs: dict) -> list:
    """Live pids of the service's session (leader included), started no earlier than the leader."""
    if record.get("boot_id") and record.get("boot_id") != boot_id():
        return []
    pid, ticks = record.get("pid"), record.get("start_ticks") or 0
    lead = procs.get(pid)
    if lead is not None and lead.start_ticks != ticks:
        return []  # the pid was reused: that session is someone else's
    return sorted(
        p for p, st in procs.items() if st.session == pid and st.live and st.start_ticks >= ticks
    )


# -- state dir ------------------------------------------------------------------------------------


class PodState(object):
    def __init__(self, state_dir: str, pod: str):
        check_name(pod, "pod")
        self.root = os.path.join(os.path.expanduser(state_dir), "pods", pod)
        self.services = os.path.join(self.root, "services")
        self.logs = os.path.join(self.root, "logs")

    def ensure(self) -> None:
        for d in (os.path.dirname(os.path.dirname(self.root)), os.path.dirname(self.root), self.root,
                  self.services, self.logs):
            os.makedirs(d, mode=0o700, exist_ok=True)

    def record_path(self, name: str) -> str:
        return os.path.join(self.services, check_name(name, "service") + ".json")

    def log_path(self, name: str) -> str:
        return os.path.join(self.logs, check_name(name, "service") + ".log")

    def lock(self):
        self.ensure()
        fd = os.open(os.path.join(self.root, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _Lock(fd)

    def read(self, name: str):
        try:
            with open(self.record_path(name)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def write(self, record: dict) -> None:
        path = self.record_path(record["name"])
        tmp = "%s.tmp.%d" % (path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def remove(self, name: str) -> bool:
        try:
            os.unlink(self.record_path(name))
            return True
        except FileNotFoundError:
            return False

    def names(self) -> list:
        try:
            files = os.listdir(self.services)
        except FileNotFoundError:
            return []
        return sorted(f[:-5] for f in files if f.endswith(".json") and SAFE_NAME.match(f[:-5]))


class _Lock(object):
    def __init__(self, fd):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def check_name(name, what: str) -> str:
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise Refused("invalid %s name %r" % (what, name))
    return name


# -- commands and HTTP ----------------------------------------------------------------------------


def run_smi(query: str) -> dict:
    try:
        proc = subprocess.run(
            ["nvidia-smi", query, SMI_FORMAT],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20,
        )
    except FileNotFoundError:
        return {"ok": False, "stdout": "", "stderr": "nvidia-smi: command not found on the pod's PATH", "rc": 127}
    except subprocess.TimeoutExpired:
        return {"ok": False, "stdout": "", "stderr": "nvidia-smi timed out after 20 s", "rc": -1}
    except OSError as err:
        return {"ok": False, "stdout": "", "stderr": "nvidia-smi: %s" % err, "rc": 126}
    return {
        "ok": proc.returncode == 0,
        "stdout": proc.stdout.decode("utf-8", "replace"),
        "stderr": proc.stderr.decode("utf-8", "replace")[-4000:],
        "rc": proc.returncode,
    }


def _body(raw: bytes, grep: str) -> str:
    text = raw.decode("utf-8", "replace")
    if grep:
        text = "".join(line for line in text.splitlines(True) if grep in line)
    return text[:BODY_LIMIT]


def http_call(port: int, method: str, path: str, body=None, timeout: float = 30.0, grep: str = "") -> dict:
    """One request to 127.0.0.1:port; status 0 = refused, timed out or no HTTP answer."""
    url = "http://127.0.0.1:%d%s" % (port, path)
    data, headers = None, {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif method == "POST":
        data = b""
    limit = GREP_READ_LIMIT if grep else BODY_LIMIT
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return {"status": resp.status, "body": _body(resp.read(limit), grep)}
    except urllib.error.HTTPError as err:
        try:
            raw = err.read(limit)
        except Exception:  # noqa: BLE001 - a broken error body is still an answer
            raw = b""
        return {"status": err.code, "body": _body(raw, grep)}
    except (urllib.error.URLError, OSError, socket.timeout, ValueError) as err:
        reason = getattr(err, "reason", err)
        return {"status": 0, "body": str(reason)[:500]}
    except Exception as err:  # noqa: BLE001 - http.client errors: the server did not answer properly
        return {"status": 0, "body": "%s: %s" % (type(err).__name__, err)}


def port_in_use(port: int) -> bool:
    if not port or port <= 0:
        return False
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.2)
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


# -- operations -----------------------------------------------------------------------------------


def op_observe(state: PodState, args: dict) -> dict:
    names = args.get("names")
    probe = args.get("probe", True)
    procs = scan_proc()
    entries = {}
    todo = []  # (name, key, port, path, grep)
    for name in state.names():
        if names is not None and name not in names:
            continue
        try:
            record = state.read(name)
        except (OSError, ValueError) as err:
            entries[name] = {"meta": {"name": name}, "alive": False, "state": "", "pids": [],
                             "error": "unreadable record: %s" % err}
            continue
        if record is None:
            continue
        lead = leader_state(record, procs)
        st = procs.get(record.get("pid"))
        entry = {
            "meta": record,
            "alive": lead == "alive",
            "leader": lead,
            "state": st.state if st is not None and lead in ("alive", "zombie") else "",
            "pids": session_members(record, procs),
        }
        entries[name] = entry
        if probe:
            entry["probes"] = {}
        if probe and entry["alive"] and record.get("port"):
            for p in record.get("probes") or []:
                todo.append((name, p["key"], int(record["port"]), p["path"], p.get("grep") or ""))
    with ThreadPoolExecutor(max_workers=max(2, min(16, len(todo) + 2))) as pool:
        gpus = pool.submit(run_smi, GPU_QUERY)
        apps = pool.submit(run_smi, APPS_QUERY)
        answers = [
            (name, key, pool.submit(http_call, port, "GET", path, None, PROBE_TIMEOUT_S, grep))
            for name, key, port, path, grep in todo
        ]
        for name, key, fut in answers:
            entries[name]["probes"][key] = fut.result()
        return {
            "now": time.time(),
            "hostname": socket.gethostname(),
            "boot_id": boot_id(),
            "gpus": gpus.result(),
            "apps": apps.result(),
            "services": entries,
        }


def op_start(state: PodState, args: dict) -> dict:
    launch = args["launch"]
    name = check_name(launch["name"], "service")
    argv = [str(a) for a in launch["argv"]]
    if not argv:
        raise Refused("service %s has an empty command line" % name)
    state.ensure()
    with state.lock():
        old = state.read(name) or {}
        procs = scan_proc()
        if old:
            if leader_state(old, procs) == "alive":
                raise Refused("service %s is already running on this pod (pid %s); stop it first" % (name, old.get("pid")))
            left = session_members(old, procs)
            if left:
                raise Refused("processes of the previous %s are still alive (pids %s); stop it first"
                              % (name, " ".join(map(str, left))))
        port = int(launch.get("port") or 0)
        if port_in_use(port):
            raise Refused("port %d is already in use on the pod by a process gpumod does not manage "
                          "for %s" % (port, name))
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in launch.get("env") or []})
        env.update({str(k): str(v) for k, v in (args.get("secret_env") or {}).items()})
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
                raise Refused("cannot start %s: %s: %s" % (name, argv[0], err.strerror or err))
        finally:
            os.close(log_fd)
        st = read_stat(child.pid)
        record = {
            "name": name,
            "pid": child.pid,
            "start_ticks": st.start_ticks if st is not None else None,
            "boot_id": boot_id(),
            "started_at": started_at,
            "argv": argv,
            "env": {str(k): str(v) for k, v in launch.get("env") or []},
            "cwd": cwd,
            "driver": launch.get("driver"),
            "sleep": launch.get("sleep"),
            "port": port,
            "gpus": list(launch.get("gpus") or []),
            "spec_hash": launch.get("spec_hash"),
            "probes": launch.get("probes") or [],
            "stop_timeout_s": launch.get("stop_timeout_s", 30.0),
            "extra": launch.get("meta") or {},
            "log": log_path,
            "failures": int(old.get("failures") or 0),
            "last_failure_at": old.get("last_failure_at"),
            "sleep_level": None,
        }
        state.write(record)
    return {"pid": child.pid, "started_at": started_at, "start_ticks": record["start_ticks"], "log": log_path}


def _rotate(log_path: str) -> None:
    try:
        if os.path.getsize(log_path) > LOG_ROTATE_BYTES:
            os.replace(log_path, log_path + ".1")
    except OSError:
        pass


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
    timeout = float(args.get("timeout_s", 30.0))
    forget = args.get("forget", True)
    record = state.read(name)
    result = {"stopped": False, "killed": False, "was_alive": False, "pids": [], "left": [], "forgot": False}
    if record is None:
        result["missing"] = True
        return result
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


def op_http(state: PodState, args: dict) -> dict:
    port = int(args["port"])
    answers = []
    for call in args["calls"]:
        answer = http_call(port, call["method"], call["path"], call.get("body"), float(call.get("timeout_s", 30.0)))
        answers.append(answer)
        if answer["status"] not in call.get("ok_status", [200]):
            break
    return {"answers": answers}


def op_gpus(state: PodState, args: dict) -> dict:
    return run_smi(GPU_QUERY)


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
        procs = scan_proc()
        if leader_state(record, procs) == "alive" or session_members(record, procs):
            raise Refused("service %s is still running (pid %s); stop it instead" % (name, record.get("pid")))
        return {"forgot": state.remove(name)}


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


def main(payload: dict) -> int:
    for key, value in (payload.get("env") or {}).items():
        os.environ[str(key)] = str(value)
    try:
        op = OPS.get(payload.get("op"))
        if op is None:
            raise Refused("unknown operation %r" % payload.get("op"))
        result = op(PodState(payload["state_dir"], payload["pod"]), payload.get("args") or {})
    except Refused as err:
        sys.stdout.write(json.dumps({"error": str(err)}) + "\n")
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__gpumod_agent__":
    sys.exit(main(PAYLOAD))  # noqa: F821 - set by BOOT
elif __name__ == "__main__":  # debugging on a pod: python3 podside.py < payload.json
    sys.exit(main(json.load(sys.stdin)))
