"""The per-pod lock holder: a stdlib-only script (Python >= 3.8) that runs ON the pod.

Why on the pod: two gpumod runs on two laptops must never interleave steps on one pod, and only
the pod sees both. ``gpumod.drivers.agent.lock`` sends this file plus a JSON payload on the stdin
of ``python3 -S -c LOCK_BOOT`` (stdlib only, so no site-packages); LOCK_BOOT reads exactly one
length-prefixed request (so stdin stays open afterwards) and execs it with
``__name__ == "__gpumod_agent__"`` and ``PAYLOAD`` set.

op "hold": take ``flock(LOCK_EX|LOCK_NB)`` on ``<state_dir>/pods/<pod>/lock`` (retrying for
``wait_s`` seconds), write ``lock.owner`` (0600: the gpumod run's host/user/pid/command/started_at
plus this holder's pid, start time and boot id), wait up to ``drain_s`` for the pod operations
still running to end (a killed gpumod run leaves its last ones running: planning before they end
would plan on a pod about to change), print ``{"locked": true, "owner": ...}`` and block reading
stdin. EOF (gpumod released the lock, exited, or its connection dropped) or
SIGTERM/SIGHUP removes the owner file and exits; the kernel drops the flock with the process.
If the lock stays busy: print ``{"locked": false, "owner": <the owner file>}`` and exit; if the
operations do not end: ``{"locked": false, "busy": [pids]}``, release and exit.

op "peek": say whether the lock is held right now (by a live process) and who recorded it, and
change nothing.

op "break": kill the recorded holder, but only if /proc/PID still shows the recorded start time
and boot id (never a recycled pid), then remove the owner file once the lock is free; print what
was found and done.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import sys
import time

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RETRY_S = 0.05
OPS_LOCK = "ops.lock"  # every pod agent operation that changes the pod holds it shared (podside_base.py)


class Refused(Exception):
    pass


def lock_paths(state_dir: str, pod: str):
    if not isinstance(pod, str) or not SAFE_NAME.match(pod):
        raise Refused("invalid pod name %r" % (pod,))
    root = os.path.join(os.path.expanduser(state_dir), "pods", pod)
    return root, os.path.join(root, "lock"), os.path.join(root, "lock.owner")


def ensure_dirs(root: str) -> None:
    for d in (os.path.dirname(os.path.dirname(root)), os.path.dirname(root), root):
        os.makedirs(d, mode=0o700, exist_ok=True)


def start_ticks(pid: int):
    """Field 22 of /proc/PID/stat (None if gone or a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    if not fields or fields[0] in ("Z", "X", "x"):
        return None
    return int(fields[19])


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def read_owner(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_owner(path: str, owner: dict) -> None:
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(owner, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def say(document: dict) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def op_hold(payload: dict) -> int:
    root, lock_path, owner_path = lock_paths(payload["state_dir"], payload["pod"])
    ensure_dirs(root)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + float(payload.get("wait_s", 5.0))
    while not try_lock(fd):
        if time.monotonic() >= deadline:
            say({"locked": False, "owner": read_owner(owner_path), "path": lock_path})
            return 0
        time.sleep(RETRY_S)
    pid = os.getpid()
    owner = dict(payload.get("owner") or {})
    owner["holder"] = {"pid": pid, "start_ticks": start_ticks(pid), "boot_id": boot_id()}
    write_owner(owner_path, owner)

    def release(*_):
        if (read_owner(owner_path) or {}).get("holder", {}).get("pid") == pid:
            try:
                os.unlink(owner_path)
            except OSError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, release)
    signal.signal(signal.SIGHUP, release)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    def pause(seconds):
        if stdin_gone(seconds):  # gpumod went away while we waited: nothing to hold the lock for
            release()

    busy = drain(os.path.join(root, OPS_LOCK), float(payload.get("drain_s", 60.0)), pause)
    if busy is not None:
        say({"locked": False, "busy": busy, "path": lock_path})
        release()
    say({"locked": True, "owner": owner, "path": lock_path})
    stdin = sys.stdin.buffer
    try:
        while stdin.read1(65536) if hasattr(stdin, "read1") else stdin.read(1):
            pass
    except OSError:
        pass
    release()
    return 0


def drain(ops_path: str, wait_s: float, pause=time.sleep):
    """Wait for the pod operations still running (those of a gpumod run that was killed go on
    without it): None once there are none, else the pids still running them after ``wait_s``."""
    fd = os.open(ops_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while not try_lock(fd):
            if time.monotonic() >= deadline:
                return lockers(ops_path)
            pause(RETRY_S)
        return None
    finally:
        os.close(fd)  # drops the flock at once: this run's own operations take it shared


def stdin_gone(timeout: float) -> bool:
    """Wait up to ``timeout`` for input; True at EOF (gpumod exited or lost its connection)."""
    stdin = sys.stdin.buffer
    ready, _, _ = select.select([stdin.fileno()], [], [], timeout)
    if not ready:
        return False
    try:
        return not (stdin.read1(65536) if hasattr(stdin, "read1") else stdin.read(1))
    except OSError:
        return True


def op_break(payload: dict) -> int:
    root, lock_path, owner_path = lock_paths(payload["state_dir"], payload["pod"])
    found = {"path": lock_path, "owner": read_owner(owner_path), "killed": False, "released": False}
    if not os.path.exists(lock_path):
        found["released"] = True
        say(found)
        return 0
    fd = os.open(lock_path, os.O_RDWR)
    if try_lock(fd):
        found["was_locked"] = False
    else:
        found["was_locked"] = True
        holder = (found["owner"] or {}).get("holder") or {}
        pid = holder.get("pid")
        if isinstance(pid, int) and pid > 1 and start_ticks(pid) is not None \
                and start_ticks(pid) == holder.get("start_ticks") and holder.get("boot_id") == boot_id():
            for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                found["killed"] = True
                end = time.monotonic() + wait_s
                while start_ticks(pid) is not None and time.monotonic() < end:
                    time.sleep(RETRY_S)
                if start_ticks(pid) is None:
                    break
        elif pid is not None:
            found["stale_pid"] = pid
        end = time.monotonic() + (2.0 if found["killed"] else 0.0)
        while not try_lock(fd):
            if time.monotonic() >= end:  # held by a process we cannot vouch for: leave it
                found["lockers"] = lockers(lock_path)
                say(found)
                return 0
            time.sleep(RETRY_S)
    try:
        os.unlink(owner_path)
    except OSError:
        pass
    found["released"] = True
    say(found)
    return 0


def op_peek(payload: dict) -> int:
    root, lock_path, owner_path = lock_paths(payload["state_dir"], payload["pod"])
    found = {"path": lock_path, "owner": read_owner(owner_path), "locked": False}
    if os.path.exists(lock_path):
        fd = os.open(lock_path, os.O_RDWR)
        try:
            found["locked"] = not try_lock(fd)
        finally:
            os.close(fd)  # drops the flock if we took it
    say(found)
    return 0


def lockers(lock_path: str) -> list:
    """PIDs holding a flock on the lock file (from /proc/locks), for the report."""
    try:
        st = os.stat(lock_path)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    pids = []
    for line in lines:
        parts = line.split()
        if "FLOCK" not in parts or "->" in parts:
            continue
        try:
            idx = parts.index("FLOCK")
            pid = int(parts[idx + 3])
            inode = int(parts[idx + 4].split(":")[2])
        except (IndexError, ValueError):
            continue
        if inode == st.st_ino:
            pids.append(pid)
    return pids


OPS = {"hold": op_hold, "break": op_break, "peek": op_peek}


def main(payload: dict) -> int:
    try:
        op = OPS.get(payload.get("op") or "")
        if op is None:
            raise Refused("unknown operation %r" % (payload.get("op"),))
        return op(payload)
    except Refused as err:
        say({"error": str(err)})
        return 2


if __name__ == "__gpumod_agent__":
    sys.exit(main(PAYLOAD))  # type: ignore[name-defined]  # noqa: F821 - set by LOCK_BOOT
