"""The pod agent's HTTP calls, nvidia-smi handling, error reporting and wire protocol."""

from __future__ import annotations

import ast
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from agent_helpers import free_port, start_server

from gpumod.drivers.agent import MARKER, PodAgent, agent_script, build_request, split_request
from gpumod.drivers.agent import podside
from gpumod.drivers.base import HttpCall
from gpumod.drivers.transports.local import LocalTransport
from gpumod.errors import PodError
from gpumod.observe import observe_pod

PY38 = Path("/root/.pyenv/versions/3.8.18/bin/python3.8")

GPU_CSV = "0, GPU-aaaa, NVIDIA GeForce RTX 4090, 24564, 1234\n"
SMI_XML = (
    '<?xml version="1.0" ?>\n<nvidia_smi_log>\n\t<gpu id="00000000:01:00.0">\n'
    "\t\t<product_name>NVIDIA GeForce RTX 4090</product_name>\n\t\t<uuid>GPU-aaaa</uuid>\n"
    "\t\t<fb_memory_usage>\n\t\t\t<total>24564 MiB</total>\n\t\t\t<used>1234 MiB</used>\n\t\t</fb_memory_usage>\n"
    "\t\t<processes>\n\t\t\t<process_info>\n\t\t\t\t<pid>4242</pid>\n\t\t\t\t<type>C</type>\n"
    "\t\t\t\t<used_memory>1200 MiB</used_memory>"
    "\n\t\t\t</process_info>\n\t\t</processes>\n\t</gpu>\n</nvidia_smi_log>\n"
)


def fake_nvidia_smi(bindir: Path, *, rc: int = 0) -> Path:
    """An executable ``nvidia-smi`` answering the agent's two queries (-q -x; --query-gpu), and
    counting its runs in ``runs``."""
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo run >> "{bindir}/runs"\n'
        f'case "$1" in --query-gpu=*) printf "{GPU_CSV}" ;; -q) cat "{bindir}/smi.xml" ;; esac\n'
        f"[ {rc} -ne 0 ] && echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver' >&2\n"
        f"exit {rc}\n"
    )
    (bindir / "smi.xml").write_text(SMI_XML)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bindir


async def test_http_calls_run_in_order_and_stop_at_the_first_failure(agent, reaper):
    _, port = await start_server(agent, reaper, "web")
    answers = await agent.http(
        port,
        [
            HttpCall("POST", "/load", body={"model": "m 1"}),
            HttpCall("POST", "/sleep?level=1"),
            HttpCall("GET", "/status/500"),
            HttpCall("POST", "/never-sent"),
        ],
    )
    assert [a.status for a in answers] == [200, 200, 500]
    first = json.loads(answers[0].body)
    assert first["path"] == "/load" and json.loads(first["body"]) == {"model": "m 1"}
    assert first["content_type"] == "application/json"
    assert json.loads(answers[1].body)["path"] == "/sleep?level=1"
    assert "/never-sent" not in await agent.logs("web")


async def test_http_ok_status_accepts_other_codes(agent, reaper):
    _, port = await start_server(agent, reaper, "web")
    answers = await agent.http(port, [HttpCall("GET", "/status/404", ok_status=(200, 404)), HttpCall("GET", "/health")])
    assert [a.status for a in answers] == [404, 200]


async def test_http_to_a_closed_port_is_status_zero(agent):
    answers = await agent.http(free_port(), [HttpCall("GET", "/health", timeout_s=1), HttpCall("GET", "/x")])
    assert len(answers) == 1 and answers[0].status == 0


async def test_http_timeout_is_status_zero(agent, reaper):
    _, port = await start_server(agent, reaper, "web")
    answers = await agent.http(port, [HttpCall("GET", "/slow", timeout_s=0.3)])
    assert answers[0].status == 0


async def test_nvidia_smi_missing_is_reported_not_raised(state_dir, tmp_path):
    agent = PodAgent(
        LocalTransport(env={"PATH": str(tmp_path / "empty")}),
        pod="box",
        state_dir=str(state_dir),
        python=sys.executable,
    )
    raw = await agent.observe()
    assert raw["smi"]["ok"] is False and raw["smi"]["rc"] == 127
    assert "nvidia-smi" in raw["smi"]["stderr"]
    assert (await agent.gpus())["ok"] is False
    observed = await observe_pod(agent)
    assert observed.reachable and observed.gpus == () and "nvidia-smi" in observed.error


async def test_nvidia_smi_answers_reach_the_observation(state_dir, tmp_path):
    bindir = fake_nvidia_smi(tmp_path / "bin")
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    agent = PodAgent(LocalTransport(), pod="box", state_dir=str(state_dir), python=sys.executable, env=env)
    raw = await agent.observe()
    assert raw["smi"] == {"ok": True, "stdout": SMI_XML, "stderr": "", "rc": 0}
    assert (bindir / "runs").read_text().count("run") == 1  # one nvidia-smi process per observation
    assert (await agent.gpus())["stdout"] == GPU_CSV
    observed = await observe_pod(agent)
    assert [(g.index, g.total_mb, g.used_mb) for g in observed.gpus] == [(0, 24564, 1234)]
    assert observed.foreign_mb == ((0, 1200),)  # pid 4242 belongs to no service


async def test_nvidia_smi_failing_keeps_its_error_text(state_dir, tmp_path):
    bindir = fake_nvidia_smi(tmp_path / "bin", rc=9)
    transport = LocalTransport(env={"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})
    agent = PodAgent(transport, pod="box", state_dir=str(state_dir), python=sys.executable)
    gpus = await agent.gpus()
    assert gpus["ok"] is False and gpus["rc"] == 9 and "NVIDIA driver" in gpus["stderr"]


async def test_a_failing_agent_raises_pod_error_with_stderr(state_dir):
    agent = PodAgent(LocalTransport(), pod="box", state_dir=str(state_dir), python=sys.executable)
    with pytest.raises(PodError, match="invalid service name"):
        await agent.logs("../../etc/passwd")
    broken = PodAgent(LocalTransport(), pod="box", state_dir=str(state_dir), python="/bin/false")
    with pytest.raises(PodError, match="exit 1"):
        await broken.observe()
    missing = PodAgent(LocalTransport(), pod="box", state_dir=str(state_dir), python="/nonexistent/python3")
    with pytest.raises(PodError) as err:
        await missing.observe()
    assert "Python >= 3.8" in err.value.hint
    unreachable = await observe_pod(missing)
    assert unreachable.reachable is False and "nonexistent" in unreachable.error


async def test_non_json_output_is_a_pod_error(state_dir):
    echo = PodAgent(LocalTransport(), pod="box", state_dir=str(state_dir), python="/bin/echo")
    with pytest.raises(PodError, match="pod box"):
        await echo.gpus()


@pytest.mark.skipif(not PY38.exists(), reason="no Python 3.8 interpreter on this machine")
async def test_the_agent_runs_on_python_3_8(agent, reaper, state_dir):
    old = PodAgent(LocalTransport(), pod="box", state_dir=str(state_dir), python=str(PY38))
    pid, port = await start_server(old, reaper, "web")
    raw = await old.observe()
    assert raw["services"]["web"]["alive"] and raw["services"]["web"]["probes"]["health"]["status"] == 200
    assert (await old.http(port, [HttpCall("GET", "/health")]))[0].status == 200
    assert (await old.stop("web", 5.0))["stopped"] is True


def test_podside_uses_no_syntax_newer_than_python_3_8():
    ast.parse(agent_script().decode(), feature_version=(3, 8))


def test_the_marker_never_occurs_in_the_script_and_requests_round_trip():
    assert MARKER not in agent_script()
    payload = {"op": "gpus", "secret": "line1\n#--gpumod-payload--\nline2"}
    script, back = split_request(build_request(payload))
    assert back == payload and script == agent_script()
    assert split_request(build_request(payload, with_script=False)) == (b"", payload)


def test_parse_stat_handles_spaces_and_parentheses_in_the_command_name():
    text = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 " + " ".join(["0"] * 12) + " 987654 0 0\n"
    st = podside.parse_stat(text)
    assert (st.pid, st.state, st.ppid, st.pgrp, st.session, st.start_ticks) == (4242, "S", 1, 4242, 4242, 987654)
    assert podside.parse_stat("garbage") is None


def test_parse_stat_reads_this_process():
    st = podside.read_stat(os.getpid())
    assert st.pid == os.getpid() and st.state == "R" and st.start_ticks > 0


def test_a_leading_tilde_in_argv_is_the_pod_users_home() -> None:
    from gpumod.drivers.agent.podside_base import expand_home

    home = os.path.expanduser("~")
    assert expand_home(["~/bin/x", "~", "--dir=~/y", "a~b"]) == [f"{home}/bin/x", home, "--dir=~/y", "a~b"]


def test_at_once_keeps_the_order_past_the_thread_limit_and_reraises():
    assert podside.at_once([lambda i=i: i for i in range(40)], limit=16) == list(range(40))
    assert podside.at_once([]) == [] and podside.at_once([lambda: 7]) == [7]
    with pytest.raises(ZeroDivisionError):
        podside.at_once([lambda: 1, lambda: 1 / 0])
