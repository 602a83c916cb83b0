"""Hostile values in every field of a systemd unit: refused, or escaped so systemd reads them back.

Three readers of the same rendered units, weakest first: the unit-file rules of systemd 252 as
``unit_text`` implements them (always), ``systemd-analyze verify``'s dump of the parsed unit (when
installed), and a real ``systemd --user`` running the service, which reports the argv, environment
and working directory it got (recipe 3A, when this machine can run it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import unit_text
from sd_client import SERVER, get, listening
from sdu import UserSystemd

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.base import Launch, Probe
from gpumod.drivers.supervisors import SystemdSupervisor, env_file_path, log_path, render_unit
from gpumod.drivers.supervisors.systemd import UnitValueError
from gpumod.drivers.transports.local import LocalTransport
from testkit import free_port, wait_until

# everything a shell, systemd or a parser might read as syntax, but no control character
HOSTILE = "a b;c $(id) `id` \"dq\" 'sq' 50% %h %% $HOME ${PATH} $$ back\\slash \\n # =x &|<>*? -@:+!"
# systemd refuses quotes and backslashes in the program's path (so does the renderer, see below)
PROGRAM_HOSTILE = "".join(ch for ch in HOSTILE if ch not in "\"'\\")
HOME = "/home/pod user"
EXPECTED_SETTINGS = [
    ("Unit", "Description"), ("Unit", "After"),
    ("Service", "Type"), ("Service", "ExecStart"), ("Service", "WorkingDirectory"),
    ("Service", "Environment"), ("Service", "Environment"), ("Service", "Environment"),
    ("Service", "EnvironmentFile"), ("Service", "KillMode"), ("Service", "Restart"), ("Service", "RestartSec"),
    ("Service", "TimeoutStopSec"), ("Service", "StandardInput"), ("Service", "StandardOutput"),
    ("Service", "StandardError"),
    ("Install", "WantedBy"),
]
CONTROL = ["\n", "\r", "\0", "\t", "\x1b", "\x7f"]


def hostile_launch(program: str, cwd: str, *head: str, port: int = 0) -> Launch:
    return Launch(
        name="svc",
        argv=(program, *head, HOSTILE, "", "--flag=" + HOSTILE, "~/" + HOSTILE, "-x", "@y", "+z", "%"),
        env=(("HOSTILE", HOSTILE), ("EMPTY", ""), ("EQ", "a=b=c $X")),
        cwd=cwd,
        port=port,
        gpus=(0, 1),
        spec_hash="h#1 %s $x \\",
        driver='drv 50% "q" $x \\',
        sleep="none",
        probes=(Probe("health", "/health"),) if port else (),
        stop_timeout_s=2.5,
    )


def render(launch: Launch, state_dir: str, pod: str = "box", **kw) -> str:
    return render_unit(
        launch, pod=pod, state_dir=state_dir, log_path=log_path(state_dir, pod, launch.name),
        env_file=env_file_path(state_dir, pod, launch.name), **kw,
    )


def expected_argv(launch: Launch, home: str) -> list[str]:
    return [home + a[1:] if a.startswith("~/") else a for a in launch.argv]


# -- the unit file rules (always) -----------------------------------------------------------


def test_every_field_hostile_adds_no_directive_and_reads_back_exactly() -> None:
    state_dir = "/srv/state " + HOSTILE
    launch = hostile_launch("/opt/bin dir/" + PROGRAM_HOSTILE, "~/cwd " + HOSTILE)
    text = render(launch, state_dir)

    settings = unit_text.lines(text)
    assert [(section, key) for section, key, _ in settings] == EXPECTED_SETTINGS
    values: dict[str, list[str]] = {}
    for _, key, value in settings:
        values.setdefault(key, []).append(value)

    program, *args = [unit_text.specifiers(w, HOME) for w in unit_text.words(values["ExecStart"][0])]
    assert [program, *unit_text.exec_args(args)] == expected_argv(launch, HOME)
    env = [unit_text.specifiers(w, HOME) for v in values["Environment"] for w in unit_text.words(v)]
    assert env == [f"{k}={v}" for k, v in launch.env]
    assert unit_text.specifiers(values["WorkingDirectory"][0], HOME) == HOME + "/cwd " + HOSTILE
    assert unit_text.specifiers(values["StandardOutput"][0], HOME) == "append:" + log_path(state_dir, "box", "svc")
    env_file = unit_text.glob_literal(unit_text.specifiers(values["EnvironmentFile"][0], HOME))
    assert env_file == env_file_path(state_dir, "box", "svc")
    assert unit_text.specifiers(values["Description"][0], HOME) == f"gpumod box/svc ({launch.driver})"
    assert values["TimeoutStopSec"] == ["2500ms"]


def test_a_newline_in_cwd_cannot_add_exec_start_pre() -> None:
    launch = hostile_launch("/bin/true", "/srv/x\nExecStartPre=/bin/sh -c 'id > /tmp/owned'")
    with pytest.raises(UnitValueError, match=r"service svc: .*working directory \(cwd\) contains the control"):
        render(launch, "/srv/state")


FIELDS = {
    "the program": lambda launch, bad: (replace(launch, argv=("/bin/x" + bad, *launch.argv[1:])), "/srv/s"),
    "argument 2": lambda launch, bad: (replace(launch, argv=(*launch.argv[:2], "a" + bad + "b")), "/srv/s"),
    "the value of HOSTILE": lambda launch, bad: (replace(launch, env=(("HOSTILE", "v" + bad),)), "/srv/s"),
    r"the working directory \(cwd\)": lambda launch, bad: (replace(launch, cwd="/srv/c" + bad + "d"), "/srv/s"),
    "the pod's state_dir": lambda launch, bad: (launch, "/srv/s" + bad + "t"),
    "the driver": lambda launch, bad: (replace(launch, driver="d" + bad), "/srv/s"),
    "the spec hash": lambda launch, bad: (replace(launch, spec_hash="h" + bad), "/srv/s"),
}


@pytest.mark.parametrize("char", CONTROL, ids=[repr(c) for c in CONTROL])
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_a_control_character_in_any_field_is_refused(field: str, char: str) -> None:
    launch, state_dir = FIELDS[field](hostile_launch("/bin/true", "/srv/cwd"), char)
    with pytest.raises(UnitValueError, match=f"{field} contains the control character"):
        render(launch, state_dir)


@pytest.mark.parametrize("char", ["\n", "\0"], ids=["newline", "nul"])
def test_log_and_secrets_file_paths_are_checked_too(char: str) -> None:
    launch = hostile_launch("/bin/true", "/srv/cwd")
    with pytest.raises(UnitValueError, match="the log path contains"):
        render_unit(launch, pod="box", state_dir="/s", log_path="/s/log" + char, env_file=None)
    with pytest.raises(UnitValueError, match="the secrets file path contains"):
        render_unit(launch, pod="box", state_dir="/s", log_path="/s/log", env_file="/s/env" + char)


@pytest.mark.parametrize(
    ("program", "why"),
    [
        ("-/bin/sh", "starts with one of"),  # systemd: ignore the failure
        ("+/bin/sh", "starts with one of"),  # systemd: full privileges
        ("@/bin/sh", "starts with one of"),  # systemd: the next word is argv[0]
        ("!/bin/sh", "starts with one of"),
        (":/bin/sh", "starts with one of"),
        ("", "starts with one of"),
        ("bin/sh", "relative path"),
        ('/opt/my "bin"/sh', "quote or a backslash"),  # systemd: "Executable name contains special characters"
        ("/opt/it's/sh", "quote or a backslash"),
        ("/opt/back\\slash/sh", "quote or a backslash"),
    ],
)
def test_a_program_systemd_would_read_as_a_prefix_or_cannot_find_is_refused(program: str, why: str) -> None:
    launch = replace(hostile_launch("/bin/true", "/srv/cwd"), argv=(program, "x"))
    with pytest.raises(UnitValueError, match=why):
        render(launch, "/srv/s")


@pytest.mark.parametrize(
    ("cwd", "why"),
    [("/srv/../etc", "'..' component"), ("/srv/x ", "ends with a blank"), ("/srv/x\\", "backslash")],
)
def test_a_path_systemd_would_reject_or_join_with_the_next_line_is_refused(cwd: str, why: str) -> None:
    with pytest.raises(UnitValueError, match=why):
        render(hostile_launch("/bin/true", cwd), "/srv/s")


def test_a_user_template_filter_refuses_control_characters_too(tmp_path: Path) -> None:
    (tmp_path / "service.unit.j2").write_text("[Service]\nExecStart={{ exec_start }}\nX={{ 'a\\nB=1' | sdquote }}\n")
    with pytest.raises(UnitValueError, match="control character"):
        render(hostile_launch("/bin/true", "/srv/cwd"), "/srv/s", template_dir=tmp_path)


# -- systemd-analyze verify: systemd's own parser --------------------------------------------


def _dump(text: str) -> dict[str, list[str]]:
    """``Key: value`` lines of the unit's section of a ``systemd-analyze`` debug dump."""
    out: dict[str, list[str]] = {}
    inside = False
    for line in text.splitlines():
        if line.strip().startswith("-> Unit "):
            inside = line.strip() == "-> Unit gpumod-box-svc.service:"
            continue
        if inside and line.startswith("\t\t") and ": " in line:
            key, _, value = line.strip().partition(": ")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_reads_the_hostile_unit_back(tmp_path: Path) -> None:
    bindir = tmp_path / ("bin " + PROGRAM_HOSTILE)
    bindir.mkdir()
    program = bindir / ("prog " + PROGRAM_HOSTILE)
    program.symlink_to("/bin/true")
    state_dir = str(tmp_path / ("state " + HOSTILE))
    launch = hostile_launch(str(program), str(tmp_path / ("cwd " + HOSTILE)))
    launch = replace(launch, argv=tuple(a for a in launch.argv if not a.startswith("~/")))  # %h: the manager's
    unit = tmp_path / "gpumod-box-svc.service"
    unit.write_text(render(launch, state_dir))

    res = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "debug"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    dump = _dump(res.stdout + res.stderr)
    command = unit_text.words(dump["Command Line"][0], shell=True)  # the dump quotes argv for a shell
    assert [command[0], *unit_text.exec_args(command[1:])] == list(launch.argv)
    assert dump["Environment"] == [f"{k}={v}" for k, v in launch.env]
    assert dump["WorkingDirectory"] == [launch.cwd]
    assert dump["StandardOutputFileToAppend"] == [log_path(state_dir, "box", "svc")]
    assert [unit_text.glob_literal(p) for p in dump["EnvironmentFile"]] == [env_file_path(state_dir, "box", "svc")]
    assert dump["Description"] == [f"gpumod box/svc ({launch.driver})"]


# -- a real systemd --user runs it -----------------------------------------------------------



async def test_systemd_runs_the_hostile_unit_with_the_exact_argv_env_cwd_and_log(
    sdu: UserSystemd, tmp_path: Path
) -> None:
    bindir = tmp_path / ("bin " + PROGRAM_HOSTILE)
    bindir.mkdir()
    program = bindir / ("py " + PROGRAM_HOSTILE)
    program.symlink_to(sys.executable)  # sd_server.py needs only the standard library
    cwd = tmp_path / ("cwd " + HOSTILE)
    cwd.mkdir()
    state_dir = str(tmp_path / ("state " + HOSTILE))
    pod = "h" + secrets.token_hex(3)
    port = free_port()
    launch = hostile_launch(str(program), str(cwd), str(SERVER), "--port", str(port), "--", port=port)
    agent = PodAgent(LocalTransport(), pod=pod, state_dir=state_dir, python=sys.executable, env=sdu.env)
    unit = f"gpumod-{pod}-svc.service"
    try:
        await SystemdSupervisor(agent, scope="user").start(launch, {"SECRET": HOSTILE})
        assert wait_until(lambda: listening(port), timeout=10), (sdu.unit_dir / unit).read_text()
        home = str(sdu.root / "home")  # %h: the user manager's HOME
        assert json.loads(get(port, "/argv")) == expected_argv(launch, home)[2:]
        assert get(port, "/cwd") == str(cwd)
        for key, value in launch.env:
            assert get(port, f"/env?key={key}") == value
        assert get(port, "/env?key=SECRET") == HOSTILE
        log = Path(log_path(state_dir, pod, "svc"))
        assert wait_until(lambda: log.is_file() and f"serving on {port}" in log.read_text(), timeout=5)
        assert (await agent.stop("svc", 5.0))["stopped"]
    finally:
        sdu.systemctl("stop", unit)
        (sdu.unit_dir / unit).unlink(missing_ok=True)
        sdu.systemctl("daemon-reload")
