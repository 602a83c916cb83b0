"""What a new user hits on the first day, found by using gpumod cold as the acceptance checks do:
`-o json` that printed nothing on stdout when the command failed, `down --pod` with a typo that
exited 1 like a pod that could not be stopped, `watch --interval 0` that spun, `logs -n 0` that
printed a line, Ctrl+C while the command was still loading that printed a traceback, and watch's
"change detected" that named an editor's temporary files."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from e2e_helpers import ROOT, Gpumod


POD = "sim-box"


def _json_error(res: subprocess.CompletedProcess[str]) -> dict:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert "error:" in res.stderr  # the red line stays for the human
    return json.loads(res.stdout)  # and stdout is still one JSON document


@pytest.mark.e2e
def test_json_output_is_a_json_document_even_when_the_command_fails(gpumod: Gpumod, tmp_path: Path) -> None:
    specs, empty = str(gpumod.specs), tmp_path / "empty"
    empty.mkdir()
    failing = [
        ("plan", str(empty)),
        ("apply", str(empty), "--yes"),
        ("status", specs, "--pod", "nope"),
        ("down", specs, "--pod", "nope", "--yes"),
        ("logs", specs, "nope"),
        ("simulate", specs, "--pod", POD, "--mode", "nope"),
        ("mode", "switch", "nope", "--specs", specs, "--yes"),
        ("service", "status", "nope", "--specs", specs),
    ]
    for args in failing:
        data = _json_error(gpumod.run(*args, "-o", "json"))
        assert data["error"] and "hint" in data, args
    data = _json_error(gpumod.run("plan", str(empty), "-o", "json"))
    (problem,) = data["problems"]
    assert problem["path"].endswith("empty") and "no spec files found" in problem["message"]
    assert data["details"] == [f"{problem['path']}:{problem['line']}: {problem['message']}"]
    assert gpumod.records() == []  # nothing was started by any of them


@pytest.mark.e2e
def test_down_of_a_pod_that_is_not_defined_exits_2_and_stops_nothing(gpumod: Gpumod) -> None:
    res = gpumod.run("apply", str(gpumod.specs), "--yes")
    assert res.returncode == 0
    assert res.stdout.endswith("Converged: sim-box matches the specs.\n")  # was "sim-box match"
    res = gpumod.run("down", str(gpumod.specs), "--pod", "sim-bx", "--yes")
    assert res.returncode == 2, res.stderr
    assert "unknown pod(s): sim-bx" in res.stderr and "sim-box" in res.stderr
    assert {row["state"] for row in gpumod.services(POD).values()} == {"running"}


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "option"),
    [(("watch", "{specs}", "--interval", "0"), "--interval"), (("logs", "{specs}", "chat", "-n", "0"), "--lines")],
)
def test_options_that_make_no_sense_are_refused_before_anything_runs(gpumod: Gpumod, args, option) -> None:
    """`watch --interval 0` used to re-apply in a busy loop; `logs -n 0` printed the last line."""
    res = gpumod.run(*(a.format(specs=gpumod.specs) for a in args), timeout=60)
    assert res.returncode == 2
    assert f"Invalid value for '{option}'" in res.stderr and "Traceback" not in res.stderr
    assert gpumod.records() == []


_INTERRUPTED_IMPORT = """
import sys

class Interrupt:  # Ctrl+C arriving while Python imports the CLI
    def find_spec(self, name, path=None, target=None):
        if name == "gpumod.cli":
            raise KeyboardInterrupt

sys.modules.pop("gpumod.cli", None)
sys.meta_path.insert(0, Interrupt())
sys.argv = ["gpumod", "apply", "specs", "--yes"]
from gpumod.entry import main
main()
"""


def test_ctrl_c_while_the_command_is_still_loading_is_a_clean_interrupt() -> None:
    res = subprocess.run([sys.executable, "-c", _INTERRUPTED_IMPORT], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stderr) == (130, "interrupted\n")


def test_the_gpumod_command_starts_at_the_guarded_entry_point() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["gpumod"] == "gpumod.entry:main"


def test_watch_names_only_the_spec_files_that_changed(tmp_path: Path) -> None:
    """`sed -i` writes a temporary file next to the spec: watch said "change detected: pod.yaml,
    sed1uJqlg, sed1uJqlg"; an editor's hidden `.#pod.yaml` or a CI file under `.github/` is no spec."""
    from gpumod.ops.watch import spec_changes

    root = tmp_path / "specs"
    changes = {
        (1, str(root / "pod.yaml")),
        (2, str(root / "pod.yaml")),
        (1, str(root / "sed1uJqlg")),
        (3, str(root / "sed1uJqlg")),
        (1, str(root / ".#modes.yaml")),
        (1, str(root / ".github" / "workflows" / "ci.yml")),
        (1, str(root / "team" / "services.yml")),
    }
    assert spec_changes(changes, root) == ["pod.yaml", "services.yml"]
    assert spec_changes({(1, str(root / "notes.txt"))}, root) == []


@pytest.mark.e2e
def test_specs_without_a_pod_are_refused_not_converged(gpumod: Gpumod) -> None:
    """A forgotten (or misnamed, `pod.yaml.bak`) Pod document: apply said "Converged." and plan
    and status printed nothing, all with exit 0."""
    (gpumod.specs / "pod.yaml").rename(gpumod.specs / "pod.yaml.bak")
    for args in (("plan",), ("apply", "--yes"), ("status",), ("down", "--yes")):
        res = gpumod.run(args[0], str(gpumod.specs), *args[1:])
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "define no pod" in res.stderr and "kind: Pod" in res.stderr
    res = gpumod.run("mode", "switch", "rag", "--specs", str(gpumod.specs), "--yes")
    assert res.returncode == 2 and "define no pod" in res.stderr
    assert gpumod.records() == []


def test_version() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "gpumod.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (res.returncode, res.stdout.strip()) == (0, f"gpumod {gpumod_version()}")


def gpumod_version() -> str:
    from gpumod import __version__

    return __version__


@pytest.mark.e2e
def test_start_with_a_mistyped_preset_says_which_one_was_meant(gpumod: Gpumod) -> None:
    """`gpumod start bge-m33 --name e` used to write a `model: bge-m33` service and report that it
    had no driver, no port and no footprint."""
    before = {p.name: p.read_text() for p in gpumod.specs.glob("*.yaml")}
    res = gpumod.run("start", "bge-m33", "--name", "e", "--specs", str(gpumod.specs), "--yes")
    assert res.returncode == 2
    assert "no preset named 'bge-m33'; did you mean 'bge-m3'?" in res.stderr
    assert {p.name: p.read_text() for p in gpumod.specs.glob("*.yaml")} == before
    assert gpumod.records() == []


@pytest.mark.e2e
def test_status_says_when_the_pods_mode_does_not_fit(gpumod: Gpumod) -> None:
    """After `mode: everything` (which cannot fit) status showed services `absent` with no change
    pending and nothing saying why: apply refuses the mode, so nothing is ever planned."""
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    assert gpumod.status()["pods"][POD]["fits"] is True
    gpumod.set_mode("pod.yaml", "everything")
    res = gpumod.run("status", str(gpumod.specs))
    assert res.returncode == 0
    assert "mode everything does not fit the GPUs; nothing is planned (`gpumod plan` shows why)" in res.stdout
    pod = gpumod.status()["pods"][POD]
    assert (pod["fits"], pod["changes_pending"]) == (False, 0)


@pytest.mark.e2e
def test_a_taken_port_fails_once_on_the_console_with_what_to_do(gpumod: Gpumod) -> None:
    """A port some other program listens on: the failed start was printed twice, once more as a
    `level='warning' event='step.failed' …` log line, and did not say what to do."""
    import socket

    port = next(d["port"] for d in _service_docs(gpumod.specs) if d["name"] == "embedding-code")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        res = gpumod.run("apply", str(gpumod.specs), "--yes")
    assert res.returncode == 1
    assert "stop that process or give embedding-code another port" in res.stdout
    assert "step.failed" not in res.stderr and "step.skipped" not in res.stderr and "failed_start" not in res.stderr


def _service_docs(specs: Path) -> list[dict]:
    import yaml

    return [d for p in specs.glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d and d["kind"] == "Service"]


@pytest.mark.e2e
def test_a_gpumod_home_that_is_a_file_is_one_red_line(gpumod: Gpumod, tmp_path: Path) -> None:
    """`GPUMOD_HOME=~/.gpumodrc` (a file): every command printed a NotADirectoryError traceback."""
    home = tmp_path / "a-file"
    home.write_text("")
    g = Gpumod(home=home, specs=gpumod.specs)
    for args in (("status", str(g.specs)), ("apply", str(g.specs), "--yes")):
        res = g.run(*args)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr
        assert "cannot set up the simulated pod" in res.stderr and "GPUMOD_HOME" in res.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("names", ["", ",", " , "])
def test_simulate_with_services_naming_nothing_is_refused(gpumod: Gpumod, names: str) -> None:
    """`--services ""` priced an empty set, "proposed: services " with nothing after it."""
    res = gpumod.run("simulate", str(gpumod.specs), "--pod", POD, "--services", names)
    assert res.returncode == 2
    assert "--services names no service" in res.stderr and "proposed" not in res.stdout


@pytest.mark.e2e
def test_a_service_record_that_is_not_an_object_is_reported_not_a_pod_traceback(gpumod: Gpumod) -> None:
    """A record file holding `[1, 2]` (valid JSON, not an object): status showed the pod
    unreachable with the pod agent's AttributeError traceback, down a ValueError traceback."""
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    (record,) = gpumod.home.glob("pods/*/services/glm-code.json")
    kept = record.read_text()
    try:
        record.write_text("[1, 2]")
        row = gpumod.services(POD)["glm-code"]
        assert row["state"] == "failed" and "is unreadable: not a JSON object" in row["message"]
        res = gpumod.run("down", str(gpumod.specs), "--yes")
        assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr
        assert "stop its processes by hand, then remove that file" in res.stdout
    finally:
        record.write_text(kept)  # so that the test's clean-up finds the process


@pytest.mark.e2e
def test_setup_of_pods_without_setup_is_refused_with_exit_2(gpumod: Gpumod) -> None:
    """docs/cli.md: setup exits 1 only when a step failed; asking for it on pods that have no
    `setup:` block touched nothing and exited 1."""
    res = gpumod.run("setup", str(gpumod.specs), "--yes")
    assert res.returncode == 2
    assert "no selected pod has a setup: block" in res.stderr


def test_every_example_the_docs_name_exists() -> None:
    """docs/cli.md ran `gpumod endpoints examples/fleet`, a folder that does not exist."""
    import re

    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md"]
    named = {m for doc in docs for m in re.findall(r"examples/[A-Za-z0-9_.-]+", doc.read_text())}
    assert named and {n for n in named if not (ROOT / n).exists()} == set()


@pytest.mark.e2e
def test_ctrl_c_during_apply_with_json_output_still_prints_a_json_document(gpumod: Gpumod) -> None:
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "gpumod.cli", "--log-format", "json", "apply", str(gpumod.specs), "--yes", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=gpumod.env, stdin=subprocess.DEVNULL,
    )
    try:
        for line in proc.stderr:  # the first step has started: the run is under way
            if '"step.started"' in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert json.loads(out)["error"] == "interrupted"
    assert "Traceback" not in err
