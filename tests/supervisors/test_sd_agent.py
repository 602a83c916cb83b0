"""The pod agent's systemd supervisor against a real ``systemd --user`` (recipe 3A, fixture ``sdu``).

Each test gets its own pod name and state dir; units are ``gpumod-<pod>-<svc>.service`` in the
module's manager and are stopped by name at teardown.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sd_client import SERVER, get, listening
from sdu import UserSystemd

from gpumod.drivers.agent import PodAgent, split_request
from gpumod.drivers.base import Launch, Probe
from gpumod.drivers.supervisors import (
    SystemdSupervisor,
    choose_supervisor,
    env_file_path,
    log_path,
    render_unit,
    unit_name,
)
from gpumod.drivers.transports.local import LocalTransport
from gpumod.errors import PodError
from gpumod.observe import parse_observation
from testkit import free_port
from testkit import wait_until as _wait_until

PY38 = Path("/root/.pyenv/versions/3.8.18/bin/python3.8")
SECRET = 'tok-"q" \\ $HOME `id` %h # x'
PLAIN_SECRET = "s3cr3t-Value-9f1c"


def wait_until(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    return _wait_until(predicate, timeout, step)


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


class Pod:
    """One test's pod: an agent on the module's systemd --user, and helpers to render and start."""

    def __init__(self, sdu: UserSystemd, state_dir: Path, python: str = sys.executable) -> None:
        self.sdu = sdu
        self.name = "t" + secrets.token_hex(3)
        self.state_dir = str(state_dir)
        self.agent = PodAgent(LocalTransport(), pod=self.name, state_dir=self.state_dir, python=python, env=sdu.env)

    def launch(self, name: str, *args: str, port: int = 0, env=(), stop_timeout_s: float = 3.0, argv=None) -> Launch:
        return Launch(
            name=name,
            argv=tuple(argv) if argv else (sys.executable, str(SERVER), "--port", str(port), *args),
            env=tuple(env),
            cwd=None,
            port=port,
            gpus=(0,),
            spec_hash="h1",
            driver="command",
            sleep="none",
            probes=(Probe("health", "/health"),) if port else (),
            stop_timeout_s=stop_timeout_s,
        )

    def render(self, launch: Launch, **kw) -> str:
        return render_unit(
            launch, pod=self.name, state_dir=self.state_dir, log_path=log_path(self.state_dir, self.name, launch.name),
            env_file=env_file_path(self.state_dir, self.name, launch.name), scope="user", **kw,
        )

    async def start(self, launch: Launch, secret_env=None, **kw) -> dict:
        return await SystemdSupervisor(self.agent, scope="user", **kw).start(launch, secret_env)

    def unit(self, name: str) -> str:
        return unit_name(self.name, name)

    def unit_file(self, name: str) -> Path:
        return self.sdu.unit_dir / self.unit(name)

    def record(self, name: str) -> Path:
        return Path(self.state_dir) / "pods" / self.name / "services" / f"{name}.json"


@pytest.fixture
async def pod(sdu: UserSystemd, tmp_path: Path) -> AsyncIterator[Pod]:
    p = Pod(sdu, tmp_path / "state")
    try:
        yield p
    finally:
        sdu.systemctl("stop", f"gpumod-{p.name}-*")
        for f in sdu.unit_dir.glob(f"gpumod-{p.name}-*"):
            f.unlink()
        sdu.systemctl("daemon-reload")
        sdu.systemctl("reset-failed")


async def test_start_observe_stop(pod: Pod) -> None:
    port = free_port()
    launch = pod.launch("web", port=port)
    started = await pod.start(launch)
    assert started["unit"] == pod.unit("web") and started["scope"] == "user"
    assert started["unit_changed"] and started["reloaded"]
    assert started["warnings"] == []  # no lingering for a manager logind does not run
    assert wait_until(lambda: listening(port))
    assert pod.unit_file("web").read_text() == pod.render(launch)

    raw = await pod.agent.observe()
    entry = raw["services"]["web"]
    assert entry["alive"] and entry["leader"] == "alive"
    assert entry["meta"]["supervisor"] == "systemd" and entry["meta"]["unit"] == pod.unit("web")
    assert entry["meta"]["pid"] == started["pid"] in entry["pids"]
    assert entry["unit"]["active_state"] == "active" and entry["unit"]["nrestarts"] == 0
    assert not entry["unit"]["crash_loop"]
    assert entry["probes"]["health"]["status"] == 200
    assert raw["init"]["user_systemd"] is True
    assert raw["init"]["pid1"] == Path("/proc/1/comm").read_text().strip()
    svc = parse_observation(pod.name, raw).service("web")
    assert svc.status == "running" and svc.pid == started["pid"]
    assert "serving on" in await pod.agent.logs("web")

    with pytest.raises(PodError, match="already running"):
        await pod.start(launch)

    stopped = await pod.agent.stop("web", 5.0)
    assert stopped["stopped"] and stopped["was_alive"] and stopped["forgot"] and not stopped["left"]
    assert gone(started["pid"]) and not listening(port)
    assert not pod.unit_file("web").exists()
    assert not Path(env_file_path(pod.state_dir, pod.name, "web")).exists()
    assert not pod.record("web").exists()
    assert pod.sdu.show(pod.unit("web"), "LoadState")["LoadState"] == "not-found"
    assert (await pod.agent.observe(probe=False))["services"] == {}


async def test_auto_resolves_to_process_unless_pid1_is_systemd(pod: Pod) -> None:
    init = (await pod.agent.observe(probe=False))["init"]
    assert set(init) == {"pid1", "uid", "systemd", "user_systemd"}
    if init["pid1"] != "systemd":
        assert init["systemd"] is False
        assert choose_supervisor("auto", init) == "process"


async def test_argv_and_env_reach_the_process_exactly(pod: Pod) -> None:
    port = free_port()
    tricky = ["a b", 'say "hi"', "$HOME", "${PATH}", "100%", "%h", "back\\slash", "new\\nline", "semi;colon", ""]
    launch = pod.launch(
        "quote", "--", *tricky, port=port,
        env=[("PLAIN", "x $HOME 50% \"q\" \\n"), ("CUDA_VISIBLE_DEVICES", "0")],
    )
    await pod.start(launch, secret_env={"GPUMOD_SECRET": SECRET})
    assert wait_until(lambda: listening(port))
    assert json.loads(get(port, "/argv"))[-len(tricky):] == tricky
    assert get(port, "/env?key=PLAIN") == "x $HOME 50% \"q\" \\n"
    assert get(port, "/env?key=GPUMOD_SECRET") == SECRET


async def test_secrets_only_in_a_private_env_file(pod: Pod) -> None:
    port = free_port()
    sent: list[tuple[list[str], bytes]] = []
    real_run = pod.agent.transport.run

    async def recording_run(argv, **kw):
        sent.append((list(argv), kw.get("stdin") or b""))
        return await real_run(argv, **kw)

    pod.agent.transport.run = recording_run  # type: ignore[method-assign]
    started = await pod.start(pod.launch("sec", port=port), secret_env={"HF_TOKEN": PLAIN_SECRET, "ODD": SECRET})
    assert wait_until(lambda: listening(port))
    assert get(port, "/env?key=HF_TOKEN") == PLAIN_SECRET
    assert get(port, "/env?key=ODD") == SECRET

    env_file = Path(env_file_path(pod.state_dir, pod.name, "sec"))
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    assert PLAIN_SECRET in env_file.read_text()
    shown = pod.sdu.show(pod.unit("sec"), "Environment", "EnvironmentFiles", "ExecStart")
    assert shown["EnvironmentFiles"].startswith(str(env_file))
    for where in (shown["Environment"], shown["ExecStart"], pod.unit_file("sec").read_text(),
                  pod.record("sec").read_text(), await pod.agent.logs("sec", 200),
                  Path(f"/proc/{started['pid']}/cmdline").read_bytes().decode()):
        assert PLAIN_SECRET not in where
    assert all(PLAIN_SECRET not in " ".join(argv) for argv, _ in sent)
    payload = next(split_request(stdin)[1] for _, stdin in sent if b'"op": "start"' in stdin)
    assert PLAIN_SECRET in payload["args"]["env_file_text"]
    assert PLAIN_SECRET not in json.dumps({k: v for k, v in payload["args"].items() if k != "env_file_text"})


async def test_crash_loop_shows_rising_restarts(pod: Pod) -> None:
    launch = pod.launch("crash", "--exit", "3")
    await pod.start(launch, restart_sec=0.3)

    seen: list[int] = []

    async def crash_looping() -> bool:
        entry = (await pod.agent.observe(probe=False))["services"]["crash"]
        seen.append(entry["unit"]["nrestarts"])
        return entry["unit"]["crash_loop"] and entry["unit"]["nrestarts"] >= 2

    deadline = time.monotonic() + 15
    while not await crash_looping():
        assert time.monotonic() < deadline, f"no crash loop seen: NRestarts {seen}"
        await asyncio.sleep(0.2)
    assert seen == sorted(seen)
    entry = (await pod.agent.observe(probe=False))["services"]["crash"]
    if not entry["alive"]:  # most of the time: between two runs of 0.1 s, waiting RestartSec
        assert entry["unit"]["result"] == "exit-code"
        assert entry["leader"] in ("restarting", "failed")
        assert parse_observation(pod.name, {"services": {"crash": entry}}).service("crash").status == "failed"
    assert "exiting with 3" in await pod.agent.logs("crash")

    # a start while it crash-loops starts it afresh (NRestarts back to 0) instead of refusing
    restarted = await pod.start(launch, restart_sec=30)
    assert restarted["unit_changed"] and restarted["reloaded"]
    assert pod.sdu.show(pod.unit("crash"), "NRestarts")["NRestarts"] == "0"
    stopped = await pod.agent.stop("crash", 5.0)
    assert stopped["stopped"] and not pod.unit_file("crash").exists()


async def test_daemon_reload_only_when_the_unit_text_changes(pod: Pod) -> None:
    sdu = pod.sdu
    # a sentinel unit whose file we edit behind systemd's back: NeedDaemonReload=yes until a reload
    sentinel = f"gpumod-{pod.name}-sentinel.service"
    path = sdu.unit_dir / sentinel
    path.write_text("[Service]\nExecStart=/bin/sleep 600\n")
    sdu.systemctl("daemon-reload", check=True)
    sdu.systemctl("start", sentinel, check=True)

    def touch_sentinel() -> None:
        path.write_text(path.read_text() + "# edited\n")
        assert sdu.show(sentinel, "NeedDaemonReload")["NeedDaemonReload"] == "yes"

    def reloaded_since_touch() -> bool:
        return sdu.show(sentinel, "NeedDaemonReload")["NeedDaemonReload"] == "no"

    once = pod.launch("once", argv=["true"])
    touch_sentinel()
    first = await pod.start(once)
    assert first["unit_changed"] and first["reloaded"] and reloaded_since_touch()
    assert 'ExecStart="/' in pod.unit_file("once").read_text()  # the bare name was resolved on the pod
    assert wait_until(lambda: sdu.show(pod.unit("once"), "ActiveState")["ActiveState"] == "inactive")
    mtime = pod.unit_file("once").stat().st_mtime_ns

    touch_sentinel()
    same = await pod.start(once)
    assert not same["unit_changed"] and not same["reloaded"]
    assert not reloaded_since_touch()
    assert pod.unit_file("once").stat().st_mtime_ns == mtime
    assert wait_until(lambda: sdu.show(pod.unit("once"), "ActiveState")["ActiveState"] == "inactive")

    changed = await pod.start(pod.launch("once", argv=["true", "again"]))
    assert changed["unit_changed"] and changed["reloaded"] and reloaded_since_touch()
    assert '"again"' in pod.unit_file("once").read_text()
    sdu.systemctl("stop", sentinel)


async def test_stop_kills_the_whole_cgroup_children_included(pod: Pod) -> None:
    port = free_port()
    started = await pod.start(pod.launch("tree", "--child", port=port, stop_timeout_s=1.0))
    assert wait_until(lambda: listening(port))
    pids = json.loads(get(port, "/pids"))
    assert len(pids) == 2 and pids[0] == started["pid"]
    entry = (await pod.agent.observe(probe=False))["services"]["tree"]
    assert set(pids) <= set(entry["pids"])
    cgroup = Path(entry["meta"]["cgroup"])
    assert (cgroup / "cgroup.procs").exists()

    began = time.monotonic()
    stopped = await pod.agent.stop("tree", 1.0)
    assert stopped["stopped"] and stopped["killed"]  # the child ignores TERM: systemd KILLed it
    assert time.monotonic() - began < 8
    assert wait_until(lambda: all(gone(p) for p in pids), timeout=5)
    assert not cgroup.exists() or not (cgroup / "cgroup.procs").read_text().split()


async def test_stop_keeps_the_record_with_forget_false_and_forget_cleans_up(pod: Pod) -> None:
    port = free_port()
    await pod.start(pod.launch("keep", port=port))
    assert wait_until(lambda: listening(port))
    with pytest.raises(PodError, match="still active"):
        await pod.agent.forget("keep")
    stopped = await pod.agent.stop("keep", 3.0, forget=False)
    assert stopped["stopped"] and not stopped["forgot"]
    record = json.loads(pod.record("keep").read_text())
    assert record["stopped_at"] and record["supervisor"] == "systemd"
    assert not pod.unit_file("keep").exists()

    raw = await pod.agent.observe(probe=False)
    entry = raw["services"]["keep"]
    assert not entry["alive"] and entry["leader"] == "not-found" and entry["pids"] == []
    assert parse_observation(pod.name, raw).service("keep").status == "failed"
    record = await pod.agent.update_meta("keep", bump_failures=True)
    assert record["failures"] == 1
    assert (await pod.agent.forget("keep"))["forgot"]
    assert not pod.record("keep").exists()


async def test_start_failure_is_reported_and_leaves_nothing_behind(pod: Pod) -> None:
    launch = pod.launch("bad", argv=["gpumod-no-such-program-xyz"])
    with pytest.raises(PodError, match="not on the pod's PATH"):
        await pod.start(launch)
    # a path that is not normalized is a "bad unit file setting": the unit cannot start
    bad_text = pod.render(pod.launch("bad2", argv=["/bin/true"])).replace("Type=simple", "WorkingDirectory=/a/../b")
    with pytest.raises(PodError, match="cannot start bad2"):
        bad2 = pod.launch("bad2", argv=["/bin/true"])
        await SystemdSupervisor(pod.agent, scope="user").start(bad2, unit_text=bad_text)
    assert not pod.unit_file("bad2").exists() and not pod.record("bad2").exists()


@pytest.mark.skipif(not PY38.exists(), reason=f"{PY38} is not installed")
async def test_the_systemd_parts_run_on_python_3_8(sdu: UserSystemd, tmp_path: Path) -> None:
    pod = Pod(sdu, tmp_path / "state", python=str(PY38))
    port = free_port()
    try:
        await pod.start(pod.launch("old", port=port), secret_env={"K": "v"})
        assert wait_until(lambda: listening(port))
        raw = await pod.agent.observe()
        assert raw["services"]["old"]["alive"] and raw["services"]["old"]["probes"]["health"]["status"] == 200
        assert (await pod.agent.stop("old", 3.0))["stopped"]
    finally:
        sdu.systemctl("stop", f"gpumod-{pod.name}-*")
