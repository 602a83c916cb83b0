"""The pod agent's systemd mechanics: systemctl, unit files, cgroups, lingering, init detection.

Why a separate file: ``podside.py`` would grow past what one can read in a sitting. This part holds
the mechanisms only (no records, no locking: those stay in ``podside.py``, which decides). Like
every part of the agent it is standard library only, Python 3.8 syntax, and ``agent_script()``
concatenates it (after ``probes/systemd.py`` and ``supervisors/systemd_syntax.py``, before
``podside.py``) into the one script sent to the pod; imported as a module (tests) it imports those
two parts normally.

systemctl answers are read as ``Key=Value`` blocks (never ``--value`` with several properties).
For ``--user`` units ``XDG_RUNTIME_DIR`` (``/run/user/UID``) and ``DBUS_SESSION_BUS_ADDRESS`` are
filled in when missing, as they are over a non-interactive SSH session.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time

if __name__ != "__gpumod_agent__":  # imported as a module: in the agent script these are defined above
    from gpumod.drivers.probes.systemd import SHOW_PROPERTIES, manager_usable, parse_show, units_by_id
    from gpumod.drivers.supervisors.systemd_syntax import exec_program

SYSTEM_UNIT_DIR = "/etc/systemd/system"
SYSTEMCTL_TIMEOUT_S = 30.0
SCOPES = ("system", "user")


class SystemdError(Exception):
    """systemctl is missing, failed or timed out; reported like a refused operation."""


def systemctl_env(scope: str) -> dict:
    env = dict(os.environ)
    if scope == "user":
        runtime = env.get("XDG_RUNTIME_DIR") or "/run/user/%d" % os.geteuid()
        env["XDG_RUNTIME_DIR"] = runtime
        env.setdefault("DBUS_SESSION_BUS_ADDRESS", "unix:path=%s/bus" % runtime)
    return env


def systemctl(scope: str, args: list, timeout: float = SYSTEMCTL_TIMEOUT_S) -> tuple:
    """(returncode, stdout, stderr) of ``systemctl [--user] ARGS``; SystemdError if it cannot run."""
    argv = ["systemctl"] + (["--user"] if scope == "user" else []) + ["--no-pager", "--no-ask-password"] + list(args)
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=systemctl_env(scope), timeout=timeout)
    except FileNotFoundError:
        raise SystemdError("systemctl is not installed on the pod (use supervisor: process)") from None
    except subprocess.TimeoutExpired:
        raise SystemdError("`%s` timed out after %.0f s" % (" ".join(argv), timeout)) from None
    except OSError as err:
        raise SystemdError("cannot run systemctl: %s" % err) from err
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace").strip()


def show_units(scope: str, units: list) -> dict:
    """ONE ``systemctl show -p ... UNITS`` → {unit: properties}."""
    if not units:
        return {}
    rc, out, err = systemctl(scope, ["show", "-p", ",".join(SHOW_PROPERTIES)] + list(units))
    if rc != 0:
        raise SystemdError("systemctl%s show failed (exit %d): %s" % (" --user" if scope == "user" else "", rc,
                                                                    err[-500:] or "no message"))
    return units_by_id(out)


def unit_dir(scope: str) -> str:
    if scope == "system":
        return SYSTEM_UNIT_DIR
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "systemd", "user")


def _atomic_write(path: str, data: bytes, mode: int) -> None:
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_if_changed(path: str, text: str, mode: int = 0o644) -> bool:
    """Write ``text`` (atomically) unless the file already holds exactly it; True if written."""
    data = text.encode("utf-8")
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    _atomic_write(path, data, mode)
    return True


def write_private(path: str, text: str) -> None:
    """A secrets file: mode 0600 in a directory of mode 0700, written by atomic rename."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    _atomic_write(path, text.encode("utf-8"), 0o600)


def remove_file(path) -> bool:
    if not path:
        return False
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def resolve_exec(unit_text: str, argv: list) -> str:
    """Put the absolute path of a bare program name into ``ExecStart=``.

    systemd searches bare names only in a fixed PATH; the process supervisor uses the agent's
    PATH (a venv's ``vllm``...). So the agent looks the name up on its PATH and rewrites the
    first word of the ``ExecStart=`` line the gpumod template rendered (other lines are left alone).
    """
    program = str(argv[0])
    if "/" in program:
        return unit_text
    found = which(program)
    if not found:
        raise SystemdError("%s is not on the pod's PATH (%s)" % (program, os.environ.get("PATH", "")))
    try:
        old = "ExecStart=" + exec_program(program)
        new = "ExecStart=" + exec_program(os.path.abspath(found))
    except ValueError as err:
        raise SystemdError(str(err)) from err
    lines = unit_text.split("\n")
    for i, line in enumerate(lines):
        if line == old or line.startswith(old + " "):
            lines[i] = new + line[len(old):]
    return "\n".join(lines)


# -- cgroups ------------------------------------------------------------------------------------


def _cgroup_roots() -> list:
    """[(mount point, hierarchy key)]: cgroup2 (key "") first, then the v1 ``name=systemd`` tree."""
    roots = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 4:
                    continue
                mnt = fields[1].replace("\\040", " ")
                if fields[2] == "cgroup2":
                    roots.append((mnt, ""))
                elif fields[2] == "cgroup" and "name=systemd" in fields[3].split(","):
                    roots.append((mnt, "name=systemd"))
    except OSError:
        pass
    return sorted(roots, key=lambda r: r[1] != "")


def _proc_cgroup(pid: int, key: str) -> str:
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            for line in f:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) == 3 and parts[1] == key:
                    return parts[2]
    except OSError:
        pass
    return ""


def cgroup_dir(main_pid: int, control_group: str, known: str = "") -> str:
    """The unit's cgroup directory as seen from here ("" if none is found).

    MainPID's own cgroup path first (it is right even when systemd runs in another cgroup
    namespace, as in tests), then the directory recorded at start, then ``ControlGroup``.
    """
    candidates = []
    for mnt, key in _cgroup_roots():
        if main_pid:
            rel = _proc_cgroup(main_pid, key)
            if rel and rel != "/":
                candidates.append(mnt + rel)
    if known:
        candidates.append(known)
    for mnt, _ in _cgroup_roots():
        if control_group:
            candidates.append(mnt + control_group)
    for path in candidates:
        if os.path.isdir(path):
            return path
    return ""


def cgroup_pids(directory: str) -> list:
    """Every pid in the cgroup and its sub-cgroups."""
    pids: set = set()
    if not directory:
        return []
    for root, _, files in os.walk(directory):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    pids.update(int(p) for p in f.read().split() if p.isdigit())
            except OSError:
                pass
    return sorted(pids)


# -- the machine ----------------------------------------------------------------------------------


def manager_answers(scope: str) -> bool:
    """Does the (system or user) manager answer and run? ``SystemState`` is what is-system-running reads."""
    try:
        rc, out, _ = systemctl(scope, ["show", "-p", "Version,SystemState"], timeout=10.0)
    except SystemdError:
        return False
    blocks = parse_show(out)
    return rc == 0 and bool(blocks) and manager_usable(blocks[0])


def which(program: str):
    """``shutil.which`` for a bare name (shutil would cost the agent ~4 ms of imports per call)."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory or ".", program)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def init_info() -> dict:
    """{"pid1", "uid", "systemd", "user_systemd"}: can this pod run systemd units, system or user?"""
    try:
        with open("/proc/1/comm") as f:
            pid1 = f.read().strip()
    except OSError:
        pid1 = ""
    info = {"pid1": pid1, "uid": os.geteuid(), "systemd": False, "user_systemd": False}
    if which("systemctl") is None:
        return info
    if pid1 == "systemd":
        info["systemd"] = manager_answers("system")
    runtime = systemctl_env("user")["XDG_RUNTIME_DIR"]
    if os.path.exists(os.path.join(runtime, "systemd", "private")):
        info["user_systemd"] = manager_answers("user")
    return info


def ensure_linger(marker: str):
    """``loginctl enable-linger`` once per pod (user units die with the last session otherwise).

    Only for the logind-run manager (``XDG_RUNTIME_DIR`` is ``/run/user/UID``). Returns a warning
    when lingering is off and cannot be enabled; the marker file records that it was attempted,
    so the warning is given once.
    """
    if os.path.exists(marker):
        return None
    if systemctl_env("user")["XDG_RUNTIME_DIR"] != "/run/user/%d" % os.geteuid():
        return None  # a user manager logind does not run (a test's, a container's): nothing to linger
    user = pwd.getpwuid(os.geteuid()).pw_name
    warning = None
    try:
        show = subprocess.run(["loginctl", "show-user", user, "-p", "Linger"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        if b"Linger=yes" not in show.stdout:
            enable = subprocess.run(["loginctl", "enable-linger", user], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
            if enable.returncode != 0:
                why = enable.stderr.decode("utf-8", "replace").strip()[-300:] or "exit %d" % enable.returncode
                warning = "could not enable lingering for %s (%s)" % (user, why)
    except (OSError, subprocess.TimeoutExpired) as err:
        warning = "could not enable lingering for %s (%s)" % (user, err)
    if warning:
        warning += ": its user units stop when its last session ends; run `loginctl enable-linger %s` as root" % user
    with open(marker, "w") as f:
        f.write("%s %s\n" % (time.time(), warning or "ok"))
    return warning
