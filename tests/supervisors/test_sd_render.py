"""Rendering systemd units on the client: golden text, quoting, secrets, template overrides, choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumod.drivers.base import Launch, Probe
from gpumod.drivers.supervisors import (
    choose_scope,
    choose_supervisor,
    env_file_path,
    log_path,
    render_env_file,
    render_unit,
    systemd_quote,
    unit_name,
)
from gpumod.drivers.supervisors.systemd import UnitTemplateError, UnitValueError, seconds
from gpumod.drivers.supervisors.systemd_syntax import exec_line, unit_path

SECRET = "hf_s3cr3t-Value"


def vllm_launch(**changes) -> Launch:
    fields = dict(
        name="chat",
        argv=("vllm", "serve", "org/My Model", "--served-model-name", "chat $1", "--gpu-memory-utilization", "90%"),
        env=(("CUDA_VISIBLE_DEVICES", "0,1"), ("VLLM_NOTE", 'say "hi" $USER 5%')),
        cwd="~/models",
        port=8000,
        gpus=(0, 1),
        spec_hash="f00d",
        driver="vllm",
        sleep="l1",
        probes=(Probe("health", "/health"),),
        stop_timeout_s=30.0,
    )
    fields.update(changes)
    return Launch(**fields)


def render(launch: Launch, **kw) -> str:
    state = kw.pop("state_dir", "~/.gpumod")
    return render_unit(
        launch,
        pod="box",
        state_dir=state,
        log_path=log_path(state, "box", launch.name),
        env_file=env_file_path(state, "box", launch.name),
        **kw,
    )


GOLDEN = r"""# Written by gpumod for pod box, service chat (spec f00d): gpumod rewrites it.
[Unit]
Description=gpumod box/chat (vllm)
After=network.target

[Service]
Type=simple
ExecStart="vllm" "serve" "org/My Model" "--served-model-name" "chat $$1" "--gpu-memory-utilization" "90%%"
WorkingDirectory=%h/models
Environment="CUDA_VISIBLE_DEVICES=0,1"
Environment="VLLM_NOTE=say \"hi\" $USER 5%%"
EnvironmentFile=%h/.gpumod/pods/box/secrets/chat.env
KillMode=control-group
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
StandardInput=null
StandardOutput=append:%h/.gpumod/pods/box/logs/chat.log
StandardError=inherit

[Install]
WantedBy=multi-user.target
"""


def test_unit_matches_the_golden_text() -> None:
    assert render(vllm_launch()) == GOLDEN


def test_user_scope_absolute_state_dir_and_no_env_file() -> None:
    launch = vllm_launch(cwd=None, stop_timeout_s=2.5, env=())
    text = render_unit(
        launch, pod="box", state_dir="/srv/gpumod", log_path=log_path("/srv/gpumod", "box", "chat"),
        env_file=None, scope="user", restart_sec=0.25,
    )
    assert "WantedBy=default.target\n" in text
    assert "StandardOutput=append:/srv/gpumod/pods/box/logs/chat.log\n" in text
    assert "RestartSec=250ms\n" in text and "TimeoutStopSec=2500ms\n" in text
    for absent in ("WorkingDirectory=", "EnvironmentFile=", "Environment="):
        assert absent not in text
    assert "\n\n\n" not in text


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ("two words", '"two words"'),
        ('say "hi"', r'"say \"hi\""'),
        ("$HOME and ${X}", '"$$HOME and $${X}"'),
        ("100%", '"100%%"'),
        ("%h%n", '"%%h%%n"'),
        (r"C:\dir\n", r'"C:\\dir\\n"'),
        ("it's; rm -rf / #", "\"it's; rm -rf / #\""),
        ("", '""'),
    ],
)
def test_systemd_quote(value: str, quoted: str) -> None:
    assert systemd_quote(value) == quoted


@pytest.mark.parametrize("bad", ["line1\nline2", "cr\rhere", "nul\0", "tab\there", "esc\x1b[31m", "del\x7f"])
def test_systemd_quote_refuses_control_characters_instead_of_escaping_them(bad: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        systemd_quote(bad)


def test_environment_items_keep_dollar_but_escape_percent_quotes_backslashes() -> None:
    assert systemd_quote('K=a $b "c" 5% \\', dollar=False) == r'"K=a $b \"c\" 5%% \\"'


def test_exec_line_quotes_every_item_so_none_is_resplit() -> None:
    assert exec_line(["/bin/echo", "a b", ""]) == '"/bin/echo" "a b" ""'


def test_unit_paths() -> None:
    assert unit_path("~") == "%h"
    assert unit_path("~/st 100%/x") == "%h/st 100%%/x"
    assert unit_path("/abs/p%") == "/abs/p%%"
    assert unit_path("rel/dir") == "%h/rel/dir"


def test_seconds() -> None:
    assert (seconds(30), seconds(0.5), seconds(90.0), seconds(1.25)) == ("30s", "500ms", "90s", "1250ms")


def test_env_file_quotes_everything_a_secret_may_hold() -> None:
    text = render_env_file({"HF_TOKEN": SECRET, "ODD": 'a"b\\c$d`e # f\ng', "B": ""})
    assert text.splitlines()[1:] == ['B=""', r'HF_TOKEN="hf_s3cr3t-Value"', r'ODD="a\"b\\c\$d\`e # f', 'g"']
    assert text.startswith("#")
    with pytest.raises(ValueError, match="invalid environment variable name"):
        render_env_file({"BAD-KEY": "x"})
    with pytest.raises(ValueError, match="NUL"):
        render_env_file({"K": "a\0b"})


def test_secrets_never_reach_the_unit_text() -> None:
    # the secret env is not an input of render_unit at all; the unit only names the file
    text = render(vllm_launch())
    assert SECRET not in text
    assert "EnvironmentFile=%h/.gpumod/pods/box/secrets/chat.env" in text
    assert SECRET in render_env_file({"HF_TOKEN": SECRET})


def test_invalid_env_key_in_the_launch_is_refused() -> None:
    with pytest.raises(UnitValueError, match="invalid environment variable name"):
        render(vllm_launch(env=(("A B", "x"),)))


def test_unit_name() -> None:
    assert unit_name("gpu-box.1", "chat_v2") == "gpumod-gpu-box.1-chat_v2.service"


def test_spec_repo_template_overrides_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "service.unit.j2").write_text(
        "[Service]\nExecStart={{ exec_start }}\nEnvironment={{ ('X=' ~ port) | sdquote }}\n"
        "Nice=5\n# {{ argv | map('sdquote') | join(' ') }} {{ '~/x' | sdpath }}\n"
    )
    text = render(vllm_launch(), template_dir=tmp_path)
    assert text.startswith('[Service]\nExecStart="vllm" "serve"')
    assert 'Environment="X=8000"\nNice=5\n' in text
    assert text.endswith('"chat $$1" "--gpu-memory-utilization" "90%%" %h/x\n')


def test_template_dir_without_a_template_uses_the_shipped_one(tmp_path: Path) -> None:
    assert render(vllm_launch(), template_dir=tmp_path) == GOLDEN


def test_undefined_variable_in_a_template_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "service.unit.j2").write_text("[Service]\nExecStart={{ exec_start }}\nUser={{ user }}\n")
    with pytest.raises(UnitTemplateError, match="'user' is undefined"):
        render(vllm_launch(), template_dir=tmp_path)


@pytest.mark.parametrize(
    ("setting", "init", "expected"),
    [
        ("process", {"systemd": True, "uid": 0}, "process"),
        ("systemd", {"systemd": False, "uid": 0}, "systemd"),
        ("auto", {"pid1": "systemd", "systemd": True, "uid": 0, "user_systemd": False}, "systemd"),
        ("auto", {"pid1": "systemd", "systemd": False, "uid": 0}, "process"),  # PID 1 but not usable
        ("auto", {"pid1": "tini", "systemd": False, "uid": 0, "user_systemd": True}, "process"),
        ("auto", {"pid1": "systemd", "systemd": True, "uid": 1000, "user_systemd": True}, "systemd"),
        ("auto", {"pid1": "systemd", "systemd": True, "uid": 1000, "user_systemd": False}, "process"),
        ("auto", None, "process"),
    ],
)
def test_choose_supervisor(setting: str, init: dict | None, expected: str) -> None:
    assert choose_supervisor(setting, init) == expected


def test_choose_supervisor_rejects_unknown_settings_and_scope_follows_uid() -> None:
    with pytest.raises(ValueError, match="unknown supervisor"):
        choose_supervisor("docker", {})
    assert choose_scope({"uid": 0}) == "system"
    assert choose_scope({"uid": 1000}) == "user"


def test_argv_items_under_the_home_start_at_percent_h() -> None:
    from gpumod.drivers.supervisors.systemd_syntax import exec_line

    line = exec_line(["~/bin/llama-server", "--models-dir", "~/my models", "~", "50%", "a~b"])
    assert line.split(" ")[0] in ("%h/bin/llama-server", '"%h/bin/llama-server"')
    assert '"%h/my models"' in line and " %h " in line
    assert "50%%" in line and "a~b" in line
