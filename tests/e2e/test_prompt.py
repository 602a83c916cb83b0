"""`gpumod prompt` end to end: the real `openai` SDK in the real CLI against the sim vLLM that
`gpumod apply` started (service `chat`, mode speak), tools running in a temp working folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from e2e_helpers import Gpumod

pytestmark = pytest.mark.e2e


def prompt(g: Gpumod, cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpumod.cli", "prompt", str(g.specs), "chat", *args],
        capture_output=True, text=True, env=g.env | {"COLUMNS": "200"}, cwd=cwd, timeout=60,
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def events(res: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def kinds(evs: list[dict]) -> list[str]:
    out: list[str] = []
    for e in evs:
        if not out or out[-1] != e["type"]:
            out.append(e["type"])
    return out


@pytest.fixture
def chatting(gpumod: Gpumod, tmp_path: Path) -> tuple[Gpumod, Path]:
    """`chat` running (with a reasoning parser) and a working folder with known files."""
    services = gpumod.specs / "services.yaml"
    docs = list(yaml.safe_load_all(services.read_text()))
    for doc in docs:
        if doc.get("name") == "chat":
            doc["args"] = {"reasoning-parser": "qwen3"}
    services.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    gpumod.set_mode("pod.yaml", "speak")
    res = gpumod.run("apply", str(gpumod.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    work = tmp_path / "work"
    work.mkdir()
    (work / "alpha.txt").write_text("first file\n")
    (work / "beta.py").write_text("print('b')\n")
    (tmp_path / "secret.txt").write_text("TOP SECRET\n")
    return gpumod, work


def test_the_model_calls_ls_in_the_working_folder_and_answers_with_a_file_name(chatting) -> None:
    g, work = chatting
    res = prompt(g, work, "list files using ls")
    assert res.returncode == 0, res.stderr
    assert "⚙ ls" in res.stdout
    assert "the first is: alpha.txt" in res.stdout
    assert "Traceback" not in res.stderr


def test_json_events_arrive_in_order_and_continue_resends_the_first_exchange(chatting) -> None:
    g, work = chatting
    first = events(prompt(g, work, "--json", "list files using ls"))
    assert kinds(first) == ["reasoning", "tool_call", "tool_result", "reasoning", "content", "done"]
    call, result = (
        first[[e["type"] for e in first].index("tool_call")],
        next(e for e in first if e["type"] == "tool_result"),
    )
    assert (call["name"], result["result"], result["is_error"]) == ("ls", "alpha.txt\nbeta.py", False)
    assert first[-1]["text"] == "The tool returned 2 line(s); the first is: alpha.txt"

    second = prompt(g, work, "--json", "-c", "and now?")
    assert second.returncode == 0, second.stderr
    assert events(second)[-1]["text"].startswith("Hello from the gpumod simulated vllm server")
    files = list((g.home / "sessions").glob("*.json"))
    assert len(files) == 1  # continued, not a new session
    roles = [m["role"] for m in json.loads(files[0].read_text())["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant"]
    # the second request carried the first exchange: the sim server counts the requests it served
    metrics = subprocess.run(
        ["curl", "-s", f"http://127.0.0.1:{port_of(g)}/metrics"], capture_output=True, text=True, timeout=10
    ).stdout
    assert 'finished_reason="stop"} 3.0' in metrics  # ls call + answer, then the continued turn


def port_of(g: Gpumod) -> int:
    docs = yaml.safe_load_all((g.specs / "services.yaml").read_text())
    return next(d["port"] for d in docs if d and d.get("name") == "chat")


def test_bash_only_with_allow_bash(chatting) -> None:
    g, work = chatting
    refused = events(prompt(g, work, "--json", "use bash with `echo hi-from-bash`"))
    assert "tool_call" not in kinds(refused)  # not offered, so not called
    assert not any("hi-from-bash" in e.get("result", "") for e in refused)
    allowed = events(prompt(g, work, "--json", "--allow-bash", "use bash with `echo hi-from-bash`"))
    result = next(e for e in allowed if e["type"] == "tool_result")
    assert (result["name"], result["result"], result["is_error"]) == ("bash", "hi-from-bash\n", False)


def test_a_path_out_of_the_working_folder_is_refused(chatting) -> None:
    g, work = chatting
    res = prompt(g, work, "--json", "use read with `../secret.txt`")
    assert res.returncode == 0, res.stderr
    result = next(e for e in events(res) if e["type"] == "tool_result")
    assert result["is_error"] and "outside the working folder" in result["result"]
    assert "TOP SECRET" not in res.stdout


def test_interactive_reads_lines_until_eof(chatting) -> None:
    g, work = chatting
    res = prompt(g, work, "-i", "--json", stdin="hello\nlist files using ls\n")
    assert res.returncode == 0, res.stderr
    done = [e["text"] for e in events(res) if e["type"] == "done"]
    assert len(done) == 2 and done[1].endswith("alpha.txt")


def test_a_service_that_is_not_running_is_one_red_line_and_exit_2(gpumod: Gpumod, tmp_path: Path) -> None:
    gpumod.set_mode("pod.yaml", "speak")  # nothing applied: nothing listens
    res = prompt(gpumod, tmp_path, "hello")
    assert res.returncode == 2
    assert "error: service chat on pod sim-box does not answer" in res.stderr
    assert "Traceback" not in res.stderr


def test_gpumod_ssh_on_a_sim_pod_runs_here_with_its_gpus(gpumod: Gpumod) -> None:
    res = gpumod.run("ssh", str(gpumod.specs), "sim-box", "nvidia-smi -L")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("GPU 0: NVIDIA GeForce RTX 4090")
    missing = gpumod.run("ssh", str(gpumod.specs), "nope", "true")
    assert missing.returncode == 2 and "no pod named nope" in missing.stderr


def test_a_vllm_without_tool_calling_flags_is_one_error_with_the_args_to_add(gpumod: Gpumod, tmp_path: Path) -> None:
    services = gpumod.specs / "services.yaml"
    docs = list(yaml.safe_load_all(services.read_text()))
    for doc in docs:
        if doc.get("name") == "chat":  # `false` removes the preset's flag
            doc["args"] = {"enable-auto-tool-choice": False}
    services.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    gpumod.set_mode("pod.yaml", "speak")
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    res = prompt(gpumod, tmp_path, "list files using ls")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "answered 400" in res.stderr and "--enable-auto-tool-choice" in res.stderr
    assert "add to service chat: args: {enable-auto-tool-choice: true, tool-call-parser: PARSER}" in res.stderr
