"""Pod provisioning, the pure parts: setup facts parsed from recorded probe outputs, the steps a
bare / partial / ready pod gets, refusals (driver too old, no driver, wrong venv Python), disk
feasibility of a download, and the ``setup:`` / ``model:`` spec models at their boundary.

The recorded outputs (tests/drivers/data/provision, see its README) came from the real probe; one
test runs the probe for real against a hub cache filled by the real huggingface_hub.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from gpumod.drivers.provision import (
    MIN_DRIVER_BY_CUDA_MAJOR, SetupRefusedError, download_need, parse_facts, probe_argv, setup_probe_args,
    setup_steps,
)
from gpumod.drivers.provision.facts import MountInfo, SetupFacts, parse_mounts, parse_nvidia_smi_banner
from gpumod.drivers.provision.steps import driver_satisfies, uv_location, vllm_satisfied, wheel_cuda_major
from gpumod.spec.setup_models import ModelSource, PodSetup, parse_model_source

DATA = Path(__file__).parent / "data" / "provision"
MiB = 1 << 20
READY_MODELS = "/tmp/provt/rec/models"  # the models_path of the recorded pods
READY_VENV = "/tmp/provt/rec/ready/.gpumod/venv"
BARE_MODELS = "/tmp/provt/rec/bare-models"


def facts(name: str) -> SetupFacts:
    return parse_facts((DATA / f"probe_{name}.json").read_text().replace("\n", " ").strip())


def ready_setup(**kw) -> PodSetup:
    return PodSetup(**{"vllm": "0.10.1", "python": "3.11", "models_path": READY_MODELS, "hf_transfer": True, **kw})


def actions(steps) -> list[str]:
    return [s.action for s in steps]


# ---------------------------------------------------------------- facts


def test_bare_pod_facts() -> None:
    f = facts("bare")
    assert (f.driver_version, f.cuda_version, f.nvidia_smi_error) == ("550.54.15", "12.4", "")
    assert (f.uv_path, f.uv_version) == (None, None)
    assert (f.venv_path, f.venv_exists, f.venv_python, f.vllm_version, f.packages) == (
        "/tmp/provt/rec/bare/.gpumod/venv", False, None, None, ())
    assert (f.models_path, f.models_path_exists, f.mount) == (BARE_MODELS, False, None)
    assert (f.hf_cache, f.hf_cache_source) == (f"{BARE_MODELS}/huggingface/hub", "models_path")
    assert f.disk_path == "/tmp/provt/rec" and f.free_bytes > 0  # the nearest existing parent
    assert f.cached == ()


def test_ready_pod_facts_read_versions_without_importing_anything() -> None:
    f = facts("ready")
    assert (f.uv_path, f.uv_version) == ("/tmp/provt/rec/ready/.gpumod/tools/bin/uv", "0.13.9")
    assert (f.venv_python, f.vllm_version) == ("3.11.7", "0.10.1")
    assert f.package("hf_transfer") == "0.1.9" and f.package("HuggingFace-Hub") == "2.4.0"
    assert f.package("PyYAML") == "6.0.4" and f.package("torch") is None


def test_ready_pod_facts_list_the_hub_cache_with_sizes_and_incomplete_blobs() -> None:
    f = facts("ready")
    assert [r.repo for r in f.cached] == ["acme/big-model", "acme/tiny-model"]
    tiny = f.cached_repo("acme/tiny-model")
    assert tiny.snapshot("main").file_sizes() == {"config.json": 3, "model.safetensors": 2 * MiB}
    assert tiny.size == 2 * MiB + 3 and tiny.incomplete == ()
    big = f.cached_repo("acme/big-model")
    assert big.snapshot(None).file_sizes() == {"config.json": 3, "model-00001-of-00002.safetensors": 3 * MiB}
    assert [name.endswith(".incomplete") for name, _ in big.incomplete] == [True]
    assert big.commit_of("main") == "695a6cc6bf6f1c890acf313f5b19fd5c9d542db4"
    assert big.snapshot("695a6cc6bf6f1c890acf313f5b19fd5c9d542db4") is not None
    assert big.snapshot("v2") is None


def test_partial_pod_facts_have_a_venv_without_vllm() -> None:
    f = facts("partial")
    assert (f.venv_exists, f.venv_python, f.vllm_version, f.packages) == (True, "3.11.7", None, ())
    assert f.uv_version == "0.13.9"


def test_driver_failures_are_read_not_guessed() -> None:
    assert (facts("old_driver").driver_version, facts("old_driver").cuda_version) == ("470.182.03", "11.4")
    f = facts("no_driver")
    assert f.driver_version is None and "exit 9" in f.nvidia_smi_error
    assert "couldn't communicate with the NVIDIA driver" in f.nvidia_smi_error
    assert parse_nvidia_smi_banner(None)[2].startswith("nvidia-smi not found")


def test_the_sim_nvidia_smi_banner_parses_to_the_sim_driver(tmp_path: Path) -> None:
    from gpumod.sim import nvidia_smi
    from gpumod.sim.pod import ensure_sim_pod

    ensure_sim_pod(tmp_path / "sim", [("NVIDIA GeForce RTX 4090", 24564)])
    code, out, _ = nvidia_smi.run([], {"GPUMOD_SIM_DIR": str(tmp_path / "sim")})
    assert parse_nvidia_smi_banner([code, out])[:2] == (nvidia_smi.DRIVER_VERSION, nvidia_smi.CUDA_VERSION)


def test_mounts_decode_octal_escapes_and_the_last_mount_on_a_point_wins() -> None:
    text = (
        "overlay / overlay rw 0 0\n"
        "/dev/md0 /mnt/hf\\040models ext4 rw 0 0\n"
        "nfs.example:/share /mnt/hf\\040models nfs4 rw,nconnect=16 0 0\n"
    )
    mounts = parse_mounts(text)
    assert mounts[-1] == MountInfo("nfs.example:/share", "/mnt/hf models", "nfs4")
    raw = json.loads((DATA / "probe_bare.json").read_text())
    raw["mounts"] = text
    raw["models_path"].update(path="/mnt/hf models", real="/mnt/hf models")
    assert parse_facts(json.dumps(raw)).mount == mounts[-1]


def test_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_facts("bash: python3: command not found\n")


# ---------------------------------------------------------------- steps


def test_a_bare_pod_gets_every_step_in_order_with_quoted_argv() -> None:
    f = facts("bare")
    setup = PodSetup(vllm="0.10.1", python="3.11", models_path=BARE_MODELS, hf_transfer=True, packages=["psutil"])
    steps = setup_steps(setup, f)

    assert actions(steps) == [
        "install-uv", "create-models-dir", "create-venv", "install-vllm", "install-packages", "enable-hf-transfer",
    ]
    uv = "/tmp/provt/rec/bare/.gpumod/tools/bin/uv"
    assert uv_location(f) == uv
    venv = "/tmp/provt/rec/bare/.gpumod/venv"
    by = {s.action: s for s in steps}
    assert by["install-uv"].env == (
        ("UV_INSTALL_DIR", "/tmp/provt/rec/bare/.gpumod/tools/bin"), ("UV_NO_MODIFY_PATH", "1"))
    assert by["create-venv"].commands == ((uv, "venv", "--python", "3.11", venv),)
    assert by["install-vllm"].title == "install vllm==0.10.1"
    assert by["install-vllm"].commands == (
        (uv, "pip", "install", "--python", f"{venv}/bin/python", "vllm==0.10.1", "--torch-backend=auto"),)
    assert by["install-packages"].commands[0][-2:] == ("huggingface_hub", "psutil")
    assert all(s.reason for s in steps)


def test_a_set_up_pod_has_no_steps() -> None:
    assert setup_steps(ready_setup(), facts("ready")) == []


def test_a_partial_pod_gets_only_the_missing_pieces() -> None:
    steps = setup_steps(ready_setup(), facts("partial"))
    assert actions(steps) == ["install-vllm", "install-packages", "enable-hf-transfer"]
    assert steps[0].reason == "vLLM is not installed"
    assert "/tmp/provt/rec/partial/.gpumod/tools/bin/uv" == steps[0].commands[0][0]


def test_another_pin_or_channel_reinstalls_vllm_with_the_reason() -> None:
    f = facts("ready")
    step = setup_steps(ready_setup(vllm="0.11.0"), f)[0]
    assert (step.action, step.title, step.reason) == (
        "install-vllm", "install vllm==0.11.0", "vLLM 0.10.1 does not match vllm: 0.11.0")
    nightly = setup_steps(ready_setup(vllm="nightly"), f)[0].commands[0]
    assert nightly[-5:] == ("-U", "vllm", "--torch-backend=auto", "--extra-index-url", "https://wheels.vllm.ai/nightly")
    gpt = setup_steps(ready_setup(vllm="gpt-oss"), f)[0].commands[0]
    assert "vllm==0.10.1+gptoss" in gpt and gpt[-2:] == ("--index-strategy", "unsafe-best-match")
    assert setup_steps(ready_setup(vllm="release"), f) == []  # 0.10.1 is a release


def test_an_index_url_installs_uv_from_it_and_every_install_uses_it() -> None:
    setup = PodSetup(vllm="0.10.1", python="3.11", index_url="http://10.200.0.1:8080/simple")
    steps = setup_steps(setup, facts("bare"), python="/usr/bin/python3")
    uv_step = steps[0]
    assert uv_step.commands == (
        ("/usr/bin/python3", "-m", "venv", "/tmp/provt/rec/bare/.gpumod/tools"),
        ("/tmp/provt/rec/bare/.gpumod/tools/bin/python", "-m", "pip", "install", "--quiet", "--index-url",
         "http://10.200.0.1:8080/simple", "--trusted-host", "10.200.0.1:8080", "uv"),
    )
    for step in steps:
        if step.action.startswith("install-") and step.action != "install-uv":
            argv = step.commands[0]
            assert argv[argv.index("--index-url") + 1] == "http://10.200.0.1:8080/simple"


def test_mount_runs_only_when_models_path_is_not_mounted() -> None:
    cmd = "mount -t nfs -o nconnect=16 nfs.example:/share /tmp/provt/rec/models"
    setup = ready_setup(mount=cmd)
    f = facts("ready")
    step = setup_steps(setup, f)[0]
    assert (step.action, step.commands) == (
        "mount-models", (("mkdir", "-p", READY_MODELS), ("sh", "-c", cmd)))
    mounted = replace(f, mount=MountInfo("nfs.example:/share", READY_MODELS, "nfs4"))
    assert setup_steps(setup, mounted) == []


def test_hostile_paths_stay_one_argv_element_and_are_quoted_in_the_shell_view() -> None:
    f = replace(facts("bare"), models_path="/mnt/$(reboot) x", models_path_exists=False)
    step = next(s for s in setup_steps(PodSetup(models_path="/mnt/$(reboot) x"), f) if s.action == "create-models-dir")
    assert step.commands == (("mkdir", "-p", "/mnt/$(reboot) x"),)
    assert step.shell() == "mkdir -p '/mnt/$(reboot) x'"


def test_a_driver_too_old_for_the_wheel_is_refused_naming_both_versions() -> None:
    with pytest.raises(SetupRefusedError) as err:
        setup_steps(PodSetup(vllm="0.10.1", python="3.11"), facts("old_driver"), pod="gpu1")
    message = str(err.value)
    assert message.startswith("pod gpu1: NVIDIA driver 470.182.03 (CUDA 11.4) is too old for vllm==0.10.1")
    assert "needs driver >= 525.60.13" in message


def test_no_driver_is_refused() -> None:
    with pytest.raises(SetupRefusedError, match="couldn't communicate with the NVIDIA driver"):
        setup_steps(PodSetup(), facts("no_driver"))


def test_a_venv_on_another_python_is_refused_not_destroyed() -> None:
    with pytest.raises(SetupRefusedError) as err:
        setup_steps(ready_setup(python="3.12"), facts("ready"))
    assert "has Python 3.11.7, setup asks for 3.12" in str(err.value)
    assert f"rm -rf {READY_VENV}" in str(err.value)


def test_cuda_and_driver_tables() -> None:
    assert MIN_DRIVER_BY_CUDA_MAJOR[12] == "525.60.13"
    assert [wheel_cuda_major(v) for v in ("0.2.1", "0.2.2", "0.10.1", "release", "nightly", "gpt-oss")] == [
        11, 12, 12, 12, 12, 12]
    assert driver_satisfies("525.60.13", 12) and not driver_satisfies("525.60.12", 12)
    assert driver_satisfies("580.65.06", 13) and not driver_satisfies("575.57.08", 13)
    assert driver_satisfies("470.182.03", 11) and not driver_satisfies("470.182.03", 12)


@pytest.mark.parametrize(("vllm", "installed", "ok"), [
    ("release", "0.10.1", True), ("release", "0.10.1.post1", True), ("release", "0.11.1.dev3+g12ab", False),
    ("release", "0.10.1+gptoss", False), ("release", "0.11.0rc1", False),
    ("nightly", "0.11.1.dev3+g12ab", True), ("nightly", "0.10.1", False),
    ("gpt-oss", "0.10.1+gptoss", True), ("gpt-oss", "0.10.1", False),
    ("0.10.1", "0.10.1", True), ("0.10.1", "0.10.2", False), ("0.10.1", None, False),
])
def test_vllm_channels(vllm: str, installed: str | None, ok: bool) -> None:
    assert vllm_satisfied(PodSetup(vllm=vllm), installed) is ok


# ---------------------------------------------------------------- disk


BIG = [("config.json", 3), ("model-00001-of-00002.safetensors", 3 * MiB), ("model-00002-of-00002.safetensors", 3 * MiB)]


def test_a_cached_model_needs_no_download() -> None:
    need = download_need("acme/tiny-model", [("config.json", 3), ("model.safetensors", 2 * MiB)], facts("ready"))
    assert need.cached and need.fits and need.fetch_bytes == 0 and need.cached_bytes == 2 * MiB + 3


def test_a_half_downloaded_model_needs_only_its_missing_files() -> None:
    need = download_need("acme/big-model", BIG, facts("ready"))
    assert need.files_to_fetch == ("model-00002-of-00002.safetensors",)
    assert (need.total_bytes, need.cached_bytes, need.fetch_bytes) == (6 * MiB + 3, 3 * MiB + 3, 3 * MiB)
    other_revision = download_need("acme/big-model", BIG, facts("ready"), revision="v2")
    assert other_revision.fetch_bytes == 6 * MiB + 3


def test_a_download_larger_than_the_free_disk_is_refused_with_the_numbers() -> None:
    small = replace(facts("ready"), free_bytes=1_000_000, disk_path="/workspace")
    need = download_need("acme/big-model", BIG, small)
    assert not need.fits
    assert need.refusal() == (
        "acme/big-model@main needs 3.1 MB more on /workspace, which has 1.0 MB free (repo 6.3 MB, "
        "3.1 MB already cached); free space or point models_path at a larger disk"
    )
    assert download_need("acme/big-model", BIG, small, keep_free_bytes=0).fits is False
    assert download_need("acme/tiny-model", [("model.safetensors", 2 * MiB)], small).fits  # cached: nothing to fetch


# ---------------------------------------------------------------- the real probe


def test_the_pod_side_probe_is_stdlib_only() -> None:
    source = Path(sys.modules["gpumod.drivers.provision.facts"].__file__).with_name("podside_setup.py")
    tree = ast.parse(source.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"__future__", "glob", "json", "os", "shutil", "subprocess", "sys"}


def test_the_real_probe_sees_a_cache_filled_by_huggingface_hub(tmp_path: Path) -> None:
    hf = pytest.importorskip("huggingface_hub")
    from infra.hubserver import HubRepo, HubServer

    repo = HubRepo.generate("acme/probe-model", {"model.safetensors": 1 * MiB}, {"config.json": "{}\n"})
    models = tmp_path / "models"
    with HubServer([repo]) as hub:
        hf.snapshot_download(repo.repo_id, cache_dir=str(models / "huggingface" / "hub"), endpoint=hub.endpoint)
        info = hf.HfApi(endpoint=hub.endpoint).model_info(repo.repo_id, files_metadata=True)
    setup = PodSetup(models_path=str(models), venv=str(tmp_path / "venv"))
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(probe_argv(sys.executable, setup_probe_args(setup)), env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    f = parse_facts(result.stdout)

    assert f.cached_repo("acme/probe-model").snapshot("main").revision == repo.commit
    need = download_need(repo.repo_id, [(s.rfilename, s.size) for s in info.siblings], f)
    assert need.cached and need.fetch_bytes == 0
    assert f.disk_path == str(models) and f.free_bytes > 0
    assert f.hf_cache == str(models / "huggingface" / "hub")


# ---------------------------------------------------------------- the spec models


@pytest.mark.parametrize("field, value, says", [
    ("vllm", "latest", "release, nightly, gpt-oss or an exact version"),
    ("vllm", "0.10.1; rm -rf /", "release, nightly, gpt-oss"),
    ("python", "3", "a version like '3.12'"),
    ("packages", ["flashinfer-python --index-url http://evil"], "not a plain requirement"),
    ("packages", ["vllm>=0.10.0 ; sys_platform"], "not a plain requirement"),
    ("mount", "mount -t nfs a:/b /m\nreboot", "control character"),
    ("models_path", "models", "absolute path"),
    ("index_url", "https://user:secret@pypi.example/simple", "must not hold credentials"),
    ("surprise", True, "Extra inputs are not permitted"),
])
def test_setup_block_refuses_hostile_or_wrong_values(field: str, value: object, says: str) -> None:
    with pytest.raises(ValidationError, match=r"(?s).*" + says.replace("(", r"\(").replace(")", r"\)")):
        PodSetup(**{field: value})


def test_setup_block_accepts_the_documented_forms() -> None:
    s = PodSetup(vllm="0.10.1", packages=["flashinfer-python", "psutil>=5,<7", "hf_transfer==0.1.9"],
                 mount="sudo mount -t nfs -o nconnect=16 nfs.dc.example:/share /mnt/hf-models",
                 models_path="/mnt/hf-models")
    assert s.python == "3.12" and s.venv == "~/.gpumod/venv" and not s.hf_transfer


def test_model_source_forms() -> None:
    assert parse_model_source("Qwen/Qwen3-0.6B") == ModelSource(repo="Qwen/Qwen3-0.6B")
    assert parse_model_source("Qwen/Qwen3-0.6B@refs/pr/1").revision == "refs/pr/1"
    assert parse_model_source({"repo": "gpt2", "revision": "a" * 40}).repo == "gpt2"
    for bad in ("Qwen//x", "../etc", "a/b/c", "org/na me", "org--x/y"):
        with pytest.raises(ValidationError):
            parse_model_source(bad)
    with pytest.raises(ValidationError):
        parse_model_source("org/name@..")


# ---------------------------------------------------------------- on a real pod


def _pod_env(home: Path, bindir: Path, sim_dir: Path | None) -> dict[str, str]:
    """The environment every remote command gets: a private HOME (netns pods share the host's
    filesystem), the sim nvidia-smi first on PATH, uv kept offline and away from host config."""
    env = {
        "HOME": str(home), "PATH": f"{bindir}:/usr/bin:/bin",
        "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(home / "uv-cache"),
        "PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    if sim_dir is not None:
        env["GPUMOD_SIM_DIR"] = str(sim_dir)
    return env


def _remote(net, pod, argv, env: dict[str, str], extra_env=()) -> subprocess.CompletedProcess:
    import shlex

    from infra.netns import ssh_run

    words = ["env", *(f"{k}={v}" for k, v in {**env, **dict(extra_env)}.items()), *argv]
    return ssh_run(net.keys, pod.ip, shlex.join(words), timeout=300)


def _probe(net, pod, setup: PodSetup, env: dict[str, str]) -> SetupFacts:
    result = _remote(net, pod, probe_argv(sys.executable, setup_probe_args(setup)), env)
    assert result.returncode == 0, result.stderr
    return parse_facts(result.stdout)


@pytest.mark.slow
def test_setup_steps_take_a_bare_netns_pod_to_ready_then_none(netns_pods, tmp_path: Path) -> None:
    from gpumod.sim.pod import ensure_sim_pod
    from infra.pkgindex import standard_index

    net = netns_pods(1)
    pod = net.pods[0]
    index = standard_index(tmp_path / "index")
    url = index.serve(host=net.host_ip)
    try:
        home = tmp_path / "home"
        home.mkdir()
        sim_dir = tmp_path / "sim"
        bindir = ensure_sim_pod(sim_dir, [("NVIDIA H100 80GB HBM3", 81559)])
        env = _pod_env(home, bindir, sim_dir)
        python = f"{sys.version_info[0]}.{sys.version_info[1]}"
        setup = PodSetup(vllm="0.10.1", python=python, models_path=str(tmp_path / "models"), hf_transfer=True,
                         index_url=url)

        steps = setup_steps(setup, _probe(net, pod, setup, env), python=sys.executable, pod=pod.name)
        assert actions(steps) == [
            "install-uv", "create-models-dir", "create-venv", "install-vllm", "install-packages", "enable-hf-transfer",
        ]
        for step in steps:
            for argv in step.commands:
                result = _remote(net, pod, argv, env, step.env)
                assert result.returncode == 0, f"{step.title}: {result.stderr[-2000:]}"

        after = _probe(net, pod, setup, env)
        assert setup_steps(setup, after, python=sys.executable) == []
        assert (after.vllm_version, after.uv_path) == ("0.10.1", f"{home}/.gpumod/tools/bin/uv")
        version = _remote(net, pod, [f"{after.venv_path}/bin/vllm", "--version"], env)
        assert version.stdout.strip() == "0.10.1"
    finally:
        index.stop()


def test_a_driver_too_old_is_refused_on_a_netns_pod_before_anything_runs(netns_pods, tmp_path: Path) -> None:
    net = netns_pods(1)
    pod = net.pods[0]
    home, bindir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bindir.mkdir()
    banner = json.loads((DATA / "probe_old_driver.json").read_text())["nvidia_smi"][1]
    (bindir / "banner").write_text(banner)
    (bindir / "nvidia-smi").write_text(f"#!/bin/sh\ncat {bindir}/banner\n")
    (bindir / "nvidia-smi").chmod(0o755)
    setup = PodSetup(vllm="0.10.1", python="3.11")

    f = _probe(net, pod, setup, _pod_env(home, bindir, None))
    with pytest.raises(SetupRefusedError, match="470.182.03 .* too old for vllm==0.10.1.*525.60.13"):
        setup_steps(setup, f, pod=pod.name)
    assert sorted(p.name for p in home.iterdir()) == []
