"""The pod agent's foundations: refusals, /proc liveness, the state dir, commands and HTTP.

Why a file of its own: the pod agent is several stdlib-only parts that ``agent_script()``
concatenates into the one script sent to the pod (see ``podside.py``); this part is what every
other part builds on. Standard library only, Python 3.8 syntax, no imports from gpumod.

Liveness is read from /proc, never from ``kill -0``: PID 1 on many pods does not reap orphans, so
a dead service may linger as a zombie. A pid is trusted only while its start time (field 22 of
/proc/PID/stat) and the boot id still match the record (pid reuse).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess

try:  # the C module: ``socket`` would build its enums on every agent start (~5 ms of pod CPU)
    import _socket as socket
except ImportError:  # pragma: no cover - an interpreter without it
    import socket  # type: ignore[no-redef]

GPU_QUERY = "--query-gpu=index,uuid,name,memory.total,memory.used"  # gpumod.drivers.probes.nvidia_smi.GPU_ARGV
SMI_FORMAT = "--format=csv,noheader,nounits"
SMI_XML = ("-q", "-x")  # gpumod.drivers.probes.nvidia_smi.XML_ARGV
BODY_LIMIT = 64 * 1024
GREP_READ_LIMIT = 16 * 1024 * 1024
LOG_ROTATE_BYTES = 64 * 1024 * 1024
PROBE_TIMEOUT_S = 1.0
POLL_S = 0.05
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PROTECTED_FIELDS = ("name", "pid", "start_ticks", "boot_id")
OPS_LOCK = "ops.lock"  # the pod lock's holder waits on it for the operations of a killed run (lockholder.py)


class Refused(Exception):
    """An operation the agent declines; reported as {"error": message}."""


class UnreadableRecord(Refused, ValueError):
    """A service record that is not gpumod's JSON object (hand-edited, truncated by a full disk)."""


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
        self.pod = check_name(pod, "pod")
        self.root = os.path.join(os.path.expanduser(state_dir), "pods", pod)
        self.services = os.path.join(self.root, "services")
        self.logs = os.path.join(self.root, "logs")
        self.secrets = os.path.join(self.root, "secrets")

    def ensure(self) -> None:
        for d in (os.path.dirname(os.path.dirname(self.root)), os.path.dirname(self.root), self.root,
                  self.services, self.logs):
            os.makedirs(d, mode=0o700, exist_ok=True)

    def record_path(self, name: str) -> str:
        return os.path.join(self.services, check_name(name, "service") + ".json")

    def log_path(self, name: str) -> str:
        return os.path.join(self.logs, check_name(name, "service") + ".log")

    def env_file_path(self, name: str) -> str:
        return os.path.join(self.secrets, check_name(name, "service") + ".env")

    def lock(self):
        self.ensure()
        fd = os.open(os.path.join(self.root, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _Lock(fd)

    def operation(self):
        """A shared flock on ``ops.lock`` for as long as an operation that changes the pod runs:
        a gpumod run killed mid-operation leaves it running, and the next run's lock holder takes
        ``ops.lock`` exclusively once to wait for it before that run observes the pod."""
        self.ensure()
        fd = os.open(os.path.join(self.root, OPS_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return _Lock(fd)

    def read(self, name: str):
        path = self.record_path(name)
        try:
            with open(path) as f:
                record = json.load(f)
        except FileNotFoundError:
            return None
        except ValueError as err:
            record = err
        if not isinstance(record, dict):
            why = "not a JSON object" if not isinstance(record, ValueError) else str(record)
            raise UnreadableRecord("the record of %s (%s) is unreadable: %s; stop its processes by hand, "
                                   "then remove that file" % (name, path, why))
        return record

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


def run_smi(*args: str) -> dict:
    """``nvidia-smi ARGS`` → {ok, stdout, stderr, rc}; never raises."""
    try:
        proc = subprocess.run(
            ["nvidia-smi"] + list(args),
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


def smi_xml() -> dict:
    """One ``nvidia-smi -q -x`` (GPUs and processes in one process), without the blocks gpumod
    never reads and that make most of its ~46 KB per GPU (the supported clocks)."""
    answer = run_smi(*SMI_XML)
    answer["stdout"] = _cut(answer["stdout"], "<supported_clocks>", "</supported_clocks>")
    return answer


def _cut(text: str, start: str, end: str) -> str:
    out, at = [], 0
    while True:
        i = text.find(start, at)
        j = text.find(end, i) if i >= 0 else -1
        if j < 0:
            out.append(text[at:])
            return "".join(out)
        out.append(text[at:i])
        at = j + len(end)


def _body(raw: bytes, grep: str) -> str:
    text = raw.decode("utf-8", "replace")
    if grep:
        text = "".join(line for line in text.splitlines(True) if grep in line)
    return text[:BODY_LIMIT]


def http_call(port: int, method: str, path: str, body=None, timeout: float = 30.0, grep: str = "", key=None) -> dict:
    """One request to 127.0.0.1:port; status 0 = refused, timed out or no HTTP answer.
    ``key``: sent as ``Authorization: Bearer`` (a service with an API key).

    A plain HTTP/1.0 exchange over a socket: urllib would import http.client, email and ssl on
    every agent start, which costs more than the whole request."""
    data = json.dumps(body).encode() if body is not None else b""
    head = "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n" % (method, path, port)
    if key:
        head += "Authorization: Bearer %s\r\n" % key
    if body is not None:
        head += "Content-Type: application/json\r\n"
    if body is not None or method == "POST":
        head += "Content-Length: %d\r\n" % len(data)
    limit = GREP_READ_LIMIT if grep else BODY_LIMIT
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        sock.sendall(head.encode("latin-1") + b"\r\n" + data)
        chunks, size = [], 0
        while size <= limit + 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
    except (OSError, socket.timeout) as err:
        return {"status": 0, "body": str(err)[:500]}
    finally:
        sock.close()
    head_raw, sep, payload = raw.partition(b"\r\n\r\n")
    lines = head_raw.decode("latin-1", "replace").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return {"status": 0, "body": "no HTTP answer: %r" % raw[:200]}
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        payload = _unchunk(payload)
    return {"status": int(parts[1]), "body": _body(payload[:limit], grep)}


def _unchunk(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if not sep or size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def port_in_use(port: int) -> bool:
    if not port or port <= 0:
        return False
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.2)
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


def _rotate(log_path: str) -> None:
    try:
        if os.path.getsize(log_path) > LOG_ROTATE_BYTES:
            os.replace(log_path, log_path + ".1")
    except OSError:
        pass


def service_record(name, pid, started_at, argv, launch, cwd, port, log_path, old) -> dict:
    """The record of a started service (both supervisors), next to its log, on the pod."""
    st = read_stat(pid) if pid else None
    return {
        "name": name,
        "pid": pid,
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


def expand_home(argv: list) -> list:
    """A leading ``~`` in an argv item means the pod user's home (there is no shell to say so)."""
    return [os.path.expanduser(a) if a == "~" or a.startswith("~/") else a for a in argv]
