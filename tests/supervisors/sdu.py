"""A real ``systemd --user`` for tests, in its own cgroup + mount namespace.

Why: the systemd supervisor must be tested against a real systemd, and the machines that run the
tests do not boot with systemd. A user manager starts in ~0.1 s. Safety rules:
the manager is moved into a fresh cgroup2 subtree of ours BEFORE ``unshare --cgroup`` (so it can
never move host processes: without its own cgroup namespace it once moved PID 1 into a scope), and
it sees a private tmpfs ``/run`` (with the ``/run/systemd/system`` that makes it believe it was
booted), never the host's. Teardown is by PID: TERM the manager (it stops its units), KILL and
reap whatever is left in its cgroup subtree, then rmdir that subtree depth-first.

``systemctl --user`` reaches it through ``XDG_RUNTIME_DIR`` (no D-Bus needed); its unit files go
to ``$XDG_CONFIG_HOME/systemd/user``. The units run in ``<cg2>/<ours>/gpumod-test-sdu-*/app.slice``.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SYSTEMD = "/lib/systemd/systemd"
PR_SET_CHILD_SUBREAPER = 36

_OUTER = 'echo $$ > "$1/cgroup.procs" && exec unshare --cgroup --mount --propagation private sh -c "$2" inner "$3"'
_INNER = (
    "mount -t cgroup2 cgroup2 /sys/fs/cgroup && "
    "mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/systemd/system && "
    'D="$1" && exec env -i HOME="$D/home" XDG_RUNTIME_DIR="$D/run" XDG_CONFIG_HOME="$D/config" '
    'XDG_DATA_HOME="$D/data" PATH=/usr/local/bin:/usr/bin:/bin '
    f"{SYSTEMD} --user --log-target=console --log-level=info"
)


class SduUnavailable(Exception):
    """This machine cannot run recipe 3A (the reason is the message)."""


def cgroup2_root() -> Path | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def own_cgroup2() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:].rstrip("/")
    return ""


def unavailable_reason() -> str | None:
    """Why recipe 3A cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (mount and cgroup namespaces, cgroup2 writes)"
    for tool in ("unshare", "systemctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path(SYSTEMD).exists():
        return f"{SYSTEMD} is not installed (apt-get install systemd)"
    if cgroup2_root() is None:
        return "no cgroup2 hierarchy is mounted"
    probe = subprocess.run(["unshare", "--cgroup", "--mount", "--propagation", "private", "true"],
                           capture_output=True, timeout=10)
    if probe.returncode != 0:
        return f"cannot create cgroup/mount namespaces: {probe.stderr.decode().strip()[:200]}"
    return None


def _pid_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def subtree_pids(root: Path) -> list[int]:
    pids: set[int] = set()
    for procs in root.rglob("cgroup.procs"):
        try:
            pids.update(int(p) for p in procs.read_text().split())
        except (OSError, ValueError):
            pass
    return sorted(pids)


@dataclass
class UserSystemd:
    """One running ``systemd --user`` (recipe 3A)."""

    root: Path
    cgroup: Path
    proc: subprocess.Popen
    started_in_s: float = 0.0
    _subreaper: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def unit_dir(self) -> Path:
        return self.root / "config" / "systemd" / "user"

    @property
    def env(self) -> dict[str, str]:
        """What a client (systemctl, the pod agent) needs to talk to this manager."""
        return {"XDG_RUNTIME_DIR": str(self.run_dir), "XDG_CONFIG_HOME": str(self.root / "config")}

    def systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["systemctl", "--user", "--no-pager", *args],
            env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30, check=check,
        )

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", "-p", ",".join(props), unit, check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def stop(self) -> None:
        """TERM the manager, KILL and reap what is left of its cgroup subtree by PID, rmdir it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        deadline = time.monotonic() + 5
        while True:
            left = subtree_pids(self.cgroup) if self.cgroup.exists() else []
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self._reap(left)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self._rmdir_subtree()
        if self._subreaper:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
            self._subreaper = False

    @staticmethod
    def _reap(pids: list[int]) -> None:
        for pid in pids:  # orphans re-parented to us (we are a subreaper while the manager runs)
            if _pid_state(pid) == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def _rmdir_subtree(self) -> None:
        for _ in range(50):
            if not self.cgroup.exists():
                return
            for dirpath, _dirs, _files in os.walk(self.cgroup, topdown=False):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
            if self.cgroup.exists():
                time.sleep(0.1)
        raise RuntimeError(f"could not remove the test cgroup {self.cgroup}")


def start_user_systemd(root: Path, *, timeout: float = 15.0) -> UserSystemd:
    """Start a ``systemd --user`` whose state lives under ``root``; raise SduUnavailable when
    this machine cannot, RuntimeError when it should but the manager does not come up."""
    reason = unavailable_reason()
    if reason:
        raise SduUnavailable(reason)
    cg2 = cgroup2_root()
    assert cg2 is not None
    cgroup = Path(f"{cg2}{own_cgroup2()}/gpumod-test-sdu-{os.getpid()}-{secrets.token_hex(3)}")
    for sub in ("run", "config/systemd/user", "data", "home"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "run").chmod(0o700)
    try:
        cgroup.mkdir()
    except OSError as err:
        raise SduUnavailable(f"cannot create the cgroup {cgroup}: {err}") from err
    libc = ctypes.CDLL(None, use_errno=True)
    subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    log = open(root / "systemd-user.log", "ab")  # noqa: SIM115 - the manager's console
    began = time.monotonic()
    try:
        proc = subprocess.Popen(
            ["sh", "-c", _OUTER, "sh", str(cgroup), _INNER, str(root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        log.close()
    sdu = UserSystemd(root=root, cgroup=cgroup, proc=proc, _subreaper=subreaper)
    socket = root / "run" / "systemd" / "private"
    while time.monotonic() - began < timeout:
        if socket.exists() and sdu.systemctl("show", "-p", "SystemState").stdout.strip() == "SystemState=running":
            sdu.started_in_s = time.monotonic() - began
            return sdu
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    console = (root / "systemd-user.log").read_text(errors="replace")[-2000:]
    sdu.stop()
    raise RuntimeError(f"systemd --user did not come up in {timeout:.0f} s (exit {proc.returncode}): {console}")
