"""The pod agent against real processes on this machine, through LocalTransport."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest
from agent_helpers import SECRET, dead, free_port, get, listening, proc_stat, server_launch, start_server, wait_until

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.base import Launch
from gpumod.drivers.transports.local import LocalTransport
from gpumod.errors import PodError
from gpumod.observe import observe_pod, parse_observation


async def test_start_observe_running_with_probe_and_private_files(agent, reaper, state_dir):
    pid, port = await start_server(agent, reaper, "web")
    raw = await agent.observe()
    entry = raw["services"]["web"]
    assert entry["alive"] is True
    assert entry["state"] in ("R", "S")
    assert pid in entry["pids"]
    assert entry["probes"]["health"]["status"] == 200
    assert entry["meta"]["spec_hash"] == "abc123"
    assert entry["meta"]["gpus"] == [0]
    assert proc_stat(pid)[2] == pid  # its own session

    observed = parse_observation("box", raw)
    svc = observed.service("web")
    assert svc.status == "running" and svc.pid == pid and svc.port == port

    record = state_dir / "pods/box/services/web.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert "tag=" in await agent.logs("web")


async def test_secret_env_reaches_the_process_but_not_record_argv_or_log(agent, reaper, state_dir):
    sent: list[list[str]] = []
    real_run = agent.transport.run

    async def recording_run(argv, **kw):
        sent.append(list(argv))
        return await real_run(argv, **kw)

    agent.transport.run = recording_run  # type: ignore[method-assign]
    port = free_port()
    started = await agent.start(server_launch("sec", port), secret_env={"GPUMOD_TEST_SECRET": SECRET})
    reaper.track(started["pid"])
    assert wait_until(lambda: listening(port))
    assert get(port, "/env?key=GPUMOD_TEST_SECRET") == SECRET
    assert get(port, "/env?key=GPUMOD_TEST_PLAIN") == "plain-value"

    record_text = (state_dir / "pods/box/services/sec.json").read_text()
    cmdline = Path(f"/proc/{started['pid']}/cmdline").read_bytes().decode()
    log_text = (state_dir / "pods/box/logs/sec.log").read_text()
    assert SECRET not in record_text
    assert SECRET not in cmdline
    assert SECRET not in log_text
    assert all(SECRET not in " ".join(argv) for argv in sent)


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)


async def test_a_service_inherits_only_path_home_and_locale_from_the_agent(state_dir, reaper):
    # the agent runs with whatever the shell running gpumod exported (here: through the transport)
    shell = {"HF_TOKEN": "hf_leaktest", "GPUMOD_TEST_RANDOM": "r4nd0m", "LANG": "C.UTF-8", "LC_TIME": "C"}
    agent = PodAgent(LocalTransport(env=shell), pod="box", state_dir=str(state_dir), python=sys.executable)
    port = free_port()
    started = await agent.start(server_launch("env", port), secret_env={"OWN_SECRET": SECRET})
    reaper.track(started["pid"])
    assert wait_until(lambda: listening(port))

    env = environ_of(started["pid"])
    assert "HF_TOKEN" not in env and "GPUMOD_TEST_RANDOM" not in env
    assert env["OWN_SECRET"] == SECRET  # its own secret
    assert env["GPUMOD_TEST_PLAIN"] == "plain-value" and env["CUDA_VISIBLE_DEVICES"] == "0"  # its launch env
    assert env["LANG"] == "C.UTF-8" and env["LC_TIME"] == "C"
    assert env["PATH"] == os.environ["PATH"] and env["HOME"] == os.environ["HOME"]
    declared = {"OWN_SECRET", "GPUMOD_TEST_PLAIN", "CUDA_VISIBLE_DEVICES"}
    assert set(env) - declared <= {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LC_TIME"}


async def test_argument_with_spaces_and_semicolon_stays_one_item(agent, reaper):
    tricky = "org/my model; touch /tmp/gpumod-pwned $(id)"
    pid, _ = await start_server(agent, reaper, "quote", "--tag", tricky)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert tricky.encode() in argv
    assert not Path("/tmp/gpumod-pwned").exists()


async def test_second_start_while_alive_is_refused(agent, reaper):
    _, port = await start_server(agent, reaper, "web")
    with pytest.raises(PodError, match="already running"):
        await agent.start(server_launch("web", free_port()))


async def test_start_refuses_a_port_someone_else_listens_on(agent, reaper):
    _, port = await start_server(agent, reaper, "first")
    what_to_do = "stop that process or give second another port"
    with pytest.raises(PodError, match=f"port {port} of second is already in use .*; {what_to_do}"):
        await agent.start(server_launch("second", port))


async def test_missing_executable_is_a_pod_error_and_leaves_no_record(agent, state_dir):
    launch = server_launch("ghost", free_port())
    launch = Launch(**{**launch.__dict__, "argv": ("/nonexistent/vllm", "serve", "m")})
    with pytest.raises(PodError, match="cannot start ghost"):
        await agent.start(launch)
    assert not (state_dir / "pods/box/services/ghost.json").exists()


async def test_stop_terminates_and_forgets(agent, reaper, state_dir):
    pid, _ = await start_server(agent, reaper, "web")
    result = await agent.stop("web", 5.0)
    assert result == {**result, "stopped": True, "killed": False, "was_alive": True, "forgot": True}
    assert dead(pid)
    assert not (state_dir / "pods/box/services/web.json").exists()
    assert await agent.stop("web", 5.0) == {**(await agent.stop("web", 5.0)), "stopped": False, "missing": True}


async def test_stop_escalates_to_sigkill_for_a_child_ignoring_sigterm(agent, reaper):
    pid, _ = await start_server(agent, reaper, "stubborn", "--child-ignores-term", stop_timeout_s=0.5)
    assert wait_until(lambda: "child ready" in (Path(agent.state_dir) / "pods/box/logs/stubborn.log").read_text())
    raw = await agent.observe(probe=False)
    members = raw["services"]["stubborn"]["pids"]
    child = next(p for p in members if p != pid)
    result = await agent.stop("stubborn", 0.5)
    assert result["killed"] is True and result["stopped"] is True
    assert dead(pid) and dead(child)


async def test_stop_without_a_timeout_uses_the_stop_timeout_the_service_was_started_with(agent, reaper):
    pid, _ = await start_server(agent, reaper, "stubborn", "--ignore-term", stop_timeout_s=1.5)
    began = time.monotonic()
    result = await agent.stop("stubborn")  # the caller no longer knows the spec (left the mode, down)
    elapsed = time.monotonic() - began
    assert result["killed"] is True and result["stopped"] is True and dead(pid)
    assert 1.5 <= elapsed < 10  # the record's 1.5 s, not the 30 s default


async def test_a_sigkilled_service_is_a_zombie_and_counts_as_dead(agent, reaper):
    pid, _ = await start_server(agent, reaper, "web")
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: dead(pid))
    raw = await agent.observe()
    entry = raw["services"]["web"]
    assert proc_stat(pid)[0] == "Z"  # re-parented to us (subreaper), not reaped yet: a zombie
    assert entry["alive"] is False
    assert entry["leader"] == "zombie" and entry["state"] == "Z"
    assert entry["pids"] == []
    svc = parse_observation("box", raw).service("web")
    assert svc.status == "failed"
    # a dead service may be started again under the same name
    started = await agent.start(server_launch("web", free_port()))
    reaper.track(started["pid"])


async def test_stop_kills_what_survives_a_dead_leader(agent, reaper):
    pid, _ = await start_server(agent, reaper, "orphan", "--child-ignores-term")
    assert wait_until(lambda: "child ready" in (Path(agent.state_dir) / "pods/box/logs/orphan.log").read_text())
    child = next(p for p in (await agent.observe(probe=False))["services"]["orphan"]["pids"] if p != pid)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: dead(pid))
    raw = await agent.observe(probe=False)
    assert raw["services"]["orphan"]["alive"] is False
    assert raw["services"]["orphan"]["pids"] == [child]  # still holds its VRAM: counted to the service
    with pytest.raises(PodError, match="still alive"):
        await agent.start(server_launch("orphan", free_port()))
    result = await agent.stop("orphan", 0.3)
    assert result["killed"] is True and dead(child)


async def test_pid_reuse_a_record_with_other_start_ticks_is_dead(agent, reaper, state_dir):
    pid, _ = await start_server(agent, reaper, "web")
    record_path = state_dir / "pods/box/services/web.json"
    record = json.loads(record_path.read_text())
    record["start_ticks"] -= 1  # the pid now looks like a different process
    record_path.write_text(json.dumps(record))
    raw = await agent.observe()
    assert raw["services"]["web"]["alive"] is False
    assert raw["services"]["web"]["leader"] == "reused"
    assert raw["services"]["web"]["pids"] == []
    result = await agent.stop("web", 1.0)
    assert result["stopped"] is True and result["was_alive"] is False
    assert not dead(pid), "a process whose start time does not match must never be signalled"
    assert not record_path.exists()


async def test_update_meta_and_failures_survive_a_restart(agent, reaper):
    pid, _ = await start_server(agent, reaper, "web")
    record = await agent.update_meta("web", sleep_level="l1", last_failure_at=123.0, bump_failures=True)
    assert record["sleep_level"] == "l1" and record["failures"] == 1
    raw = await agent.observe(probe=False)
    assert parse_observation("box", raw).service("web").sleep_level == "l1"
    with pytest.raises(PodError, match="cannot be changed"):
        await agent.update_meta("web", pid=1)
    await agent.stop("web", 5.0, forget=False)
    assert (await agent.observe(probe=False))["services"]["web"]["alive"] is False
    started = await agent.start(server_launch("web", free_port()))
    reaper.track(started["pid"])
    meta = (await agent.observe(probe=False))["services"]["web"]["meta"]
    assert meta["failures"] == 1 and meta["last_failure_at"] == 123.0 and meta["sleep_level"] is None
    with pytest.raises(PodError, match="no record"):
        await agent.update_meta("nothing", sleep_level=None)


async def test_forget_only_dead_services(agent, reaper, state_dir):
    pid, _ = await start_server(agent, reaper, "web")
    with pytest.raises(PodError, match="still running"):
        await agent.forget("web")
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: dead(pid))
    assert await agent.forget("web") == {"forgot": True}
    assert (await agent.observe(probe=False))["services"] == {}


async def test_observe_pod_gives_an_observed_pod(agent, reaper):
    pid, port = await start_server(agent, reaper, "web")
    observed = await observe_pod(agent)
    assert observed.reachable and observed.name == "box"
    assert [s.name for s in observed.services] == ["web"]
    assert observed.service("web").status == "running"
    assert observed.observed_at > 0
