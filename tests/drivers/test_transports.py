"""LocalTransport against real processes; FakeTransport and PodAgent's use of a transport."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from gpumod.drivers.agent import BOOT, PodAgent, split_request
from gpumod.drivers.base import HttpCall, Launch, Probe
from gpumod.drivers.transports import TIMEOUT_RETURNCODE, FakeTransport, LocalTransport
from gpumod.errors import PodError
from gpumod.ports import CommandResult


def gone_or_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


async def test_local_runs_argv_with_stdin_and_env_overrides():
    transport = LocalTransport(env={"GPUMOD_T": "a b;c"})
    code = (
        "import os,sys;sys.stdout.write(sys.stdin.read()+'|'+os.environ['GPUMOD_T']);sys.stderr.write('e');sys.exit(3)"
    )
    result = await transport.run([sys.executable, "-c", code], stdin=b"in; $(x)", timeout=10)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"in; $(x)|a b;c", b"e")
    await transport.close()


async def test_local_without_stdin_gets_dev_null():
    result = await LocalTransport().run([sys.executable, "-c", "import sys;print(repr(sys.stdin.read()))"])
    assert result.ok and result.stdout.strip() == b"''"


async def test_local_missing_executable_is_127():
    result = await LocalTransport().run(["/nonexistent/bin/thing"])
    assert result.returncode == 127 and b"/nonexistent/bin/thing" in result.stderr


async def test_local_timeout_kills_the_child_and_what_it_forked(tmp_path):
    pidfile = tmp_path / "pids"
    code = (
        "import os,subprocess,sys,time;"
        "c=subprocess.Popen([sys.executable,'-c','import time;time.sleep(60)']);"
        f"open({str(pidfile)!r},'w').write('%d %d'%(os.getpid(),c.pid));time.sleep(60)"
    )
    started = time.monotonic()
    result = await LocalTransport().run([sys.executable, "-c", code], timeout=1.0)
    assert result.returncode == TIMEOUT_RETURNCODE and b"timed out" in result.stderr
    assert time.monotonic() - started < 5
    parent, child = map(int, pidfile.read_text().split())
    deadline = time.monotonic() + 3
    while not (gone_or_zombie(parent) and gone_or_zombie(child)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone_or_zombie(parent) and gone_or_zombie(child)


async def test_fake_transport_records_and_replays_in_order():
    fake = FakeTransport([CommandResult(0, b"one", b"")]).push(lambda argv, stdin: CommandResult(1, stdin or b"", b""))
    assert (await fake.run(["a"], timeout=2)).stdout == b"one"
    assert (await fake.run(["b"], stdin=b"x")).stdout == b"x"
    assert [c.argv for c in fake.calls] == [("a",), ("b",)] and fake.calls[0].timeout == 2
    with pytest.raises(AssertionError, match="no scripted result"):
        await fake.run(["c"])
    await fake.close()
    assert fake.closed


async def test_agent_sends_boot_and_payload_and_keeps_secrets_out_of_argv():
    fake = FakeTransport().push_json({"pid": 7, "started_at": 1.0})
    agent = PodAgent(fake, pod="box", state_dir="~/.gpumod", python="python3", env={"PATH": "/sim/bin"})
    launch = Launch(
        "web", ("srv", "--port", "80"), (("A", "1"),), None, 80, (0,), "h", "command", "none", (Probe("health", "/h"),)
    )
    assert await agent.start(launch, secret_env={"HF_TOKEN": "hf_secret"}) == {"pid": 7, "started_at": 1.0}
    call = fake.calls[0]
    assert call.argv == ("python3", "-S", "-c", BOOT)  # stdlib-only agent: no site-packages scan
    assert "hf_secret" not in " ".join(call.argv)
    script, payload = split_request(call.stdin)
    assert script == b""  # the agent cached on the pod is tried first
    assert payload["op"] == "start" and payload["pod"] == "box" and payload["env"] == {"PATH": "/sim/bin"}
    assert payload["args"]["secret_env"] == {"HF_TOKEN": "hf_secret"}
    assert payload["args"]["launch"]["probes"] == [{"key": "health", "path": "/h", "grep": ""}]


async def test_agent_errors_become_pod_errors():
    fake = FakeTransport()
    fake.push_json({"error": "service web is already running"}, returncode=2)
    fake.push(CommandResult(1, b"", b"Traceback...\nKeyError: 'x'\n"))
    fake.push(CommandResult(0, b"not json", b""))
    agent = PodAgent(fake, pod="box", state_dir="/s")
    with pytest.raises(PodError, match="pod box: start: service web is already running"):
        await agent._call("start", {})
    with pytest.raises(PodError, match="KeyError"):
        await agent.observe()
    with pytest.raises(PodError, match="not json"):
        await agent.gpus()


async def test_agent_http_converts_answers_and_budgets_the_timeout():
    fake = FakeTransport().push_json({"answers": [{"status": 200, "body": "{}"}, {"status": 0, "body": "refused"}]})
    agent = PodAgent(fake, pod="box", state_dir="/s")
    answers = await agent.http(
        8000, [HttpCall("POST", "/a", body={"x": 1}, timeout_s=5), HttpCall("GET", "/b", timeout_s=7)]
    )
    assert [(a.status, a.body) for a in answers] == [(200, "{}"), (0, "refused")]
    assert fake.calls[0].timeout >= 12
    _, payload = split_request(fake.calls[0].stdin)
    assert payload["args"]["calls"][0] == {
        "method": "POST",
        "path": "/a",
        "body": {"x": 1},
        "timeout_s": 5,
        "ok_status": [200],
    }
    assert await agent.http(8000, []) == [] and len(fake.calls) == 1
