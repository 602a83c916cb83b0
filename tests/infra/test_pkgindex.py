"""The local package index installs offline with the real pip and uv, and its ``vllm`` serves.

Real parts: a PEP 503 index over loopback HTTP, ``python -m venv`` + pip, uv (when installed in
the test venv: it is a dev extra), the sim vLLM server behind the wheel's ``vllm`` command.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from gpumod.sim.pod import ensure_sim_pod
from testkit import free_port, wait_until

from .pkgindex import PackageIndex, hf_transfer_wheel, standard_index, vllm_wheel

# pip on this machine reads a config with find-links/extra indexes: the tests see only their index
PIP_ENV = {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}


@pytest.fixture
def small_index(tmp_path: Path):
    """vllm 0.10.1 + hf_transfer only (fast to build and to install)."""
    index = PackageIndex(tmp_path / "index")
    index.add(vllm_wheel(index.files, "0.10.1"))
    index.add(hf_transfer_wheel(index.files))
    index.serve()
    yield index
    index.stop()


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    return path


def _pip_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    return path


def test_simple_pages_link_each_wheel_with_its_sha256(small_index: PackageIndex) -> None:
    with urllib.request.urlopen(f"{small_index.url}/vllm/", timeout=5) as r:
        page = r.read().decode()
    href = re.search(r'href="([^"]+)#sha256=([0-9a-f]{64})"', page)
    assert href is not None, page
    wheel = small_index.files / Path(href.group(1)).name
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == href.group(2)
    with urllib.request.urlopen(f"{small_index.url}/", timeout=5) as r:
        assert {"vllm", "hf-transfer"} <= set(re.findall(r'href="([^"/]+)/"', r.read().decode()))


def test_pip_install_from_the_index_gives_a_vllm_command_that_runs_the_sim_server(
    small_index: PackageIndex, tmp_path: Path
) -> None:
    venv = _pip_venv(tmp_path / "venv")
    env = {**os.environ, **PIP_ENV}
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "--index-url", small_index.url, "vllm", "hf_transfer"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert any("/files/vllm-0.10.1-py3-none-any.whl" in p for p in small_index.requests)

    version = subprocess.run([str(venv / "bin" / "vllm"), "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == "0.10.1"
    metadata = next((venv / "lib").glob("python*/site-packages/vllm-0.10.1.dist-info/METADATA"))
    assert "Version: 0.10.1" in metadata.read_text()

    port = free_port()
    sim_dir = tmp_path / "sim"
    ensure_sim_pod(sim_dir, [("NVIDIA GeForce RTX 4090", 24564)])
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("GPUMOD_SIM")}
    server_env.update(GPUMOD_SIM_DIR=str(sim_dir), GPUMOD_SIM_LOAD_S="0", CUDA_VISIBLE_DEVICES="0")
    proc = subprocess.Popen([str(venv / "bin" / "vllm"), "serve", "acme/tiny-model", "--port", str(port)],
                            env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _get(port, "/health") == 200, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
            models = json.loads(resp.read())
        assert [m["id"] for m in models["data"]] == ["acme/tiny-model"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except OSError:
        return 0


UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


@pytest.mark.skipif(UV is None, reason="uv is a dev extra: pip install -e '.[dev]'")
def test_uv_creates_a_venv_and_installs_vllm_and_huggingface_hub_offline(tmp_path: Path) -> None:
    index = standard_index(tmp_path / "index")
    index.serve()
    try:
        env = {**os.environ, **PIP_ENV, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1",
               "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
        venv = tmp_path / "venv"
        python = f"{sys.version_info[0]}.{sys.version_info[1]}"
        subprocess.run([UV, "venv", "--python", python, str(venv)], env=env, check=True, capture_output=True,
                       timeout=120)
        r = subprocess.run(
            [UV, "pip", "install", "--python", str(venv / "bin" / "python"), "--index-url", index.url,
             "vllm==0.10.1", "huggingface_hub", "hf_transfer", "--torch-backend=auto"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert r.returncode == 0, r.stderr
        hub = subprocess.run([str(venv / "bin" / "python"), "-c", "import huggingface_hub as h; print(h.__version__)"],
                             capture_output=True, text=True, timeout=60)
        assert hub.returncode == 0, hub.stderr
        import huggingface_hub

        assert hub.stdout.strip() == huggingface_hub.__version__
        uv_wheel = list(index.files.glob("uv-*.whl"))
        assert uv_wheel, "the index carries uv itself (repacked from the test venv)"
    finally:
        index.stop()
