"""The nvidia-smi stand-in prints the real CSV formats, byte for byte, from the sim allocations."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from gpumod.sim.gpu import SimGpus, gpu_uuid, proc_start_time
from gpumod.sim.nvidia_smi import run
from gpumod.sim.pod import ensure_sim_pod
from sim_helpers import RTX_4090, wait_for

A6000 = ("NVIDIA RTX A6000", 49140)


@pytest.fixture
def pod(tmp_path: Path) -> Path:
    directory = tmp_path / "pod"
    ensure_sim_pod(directory, [RTX_4090, A6000])
    return directory


def smi(pod: Path, *argv: str) -> tuple[int, str, str]:
    return run(list(argv), {"GPUMOD_SIM_DIR": str(pod)})


@pytest.fixture
def busy(pod: Path, sleeper) -> tuple[Path, int, int, str, str]:
    """GPU 0 holds 19100 MiB (llama-server), GPU 1 two processes (one spanning both GPUs)."""
    a, b = sleeper(), sleeper()
    gpus = SimGpus(pod)
    gpus.allocate(a.pid, {0: 19100}, "/usr/local/bin/llama-server")
    gpus.allocate(b.pid, {0: 500, 1: 30000}, "/usr/bin/python3")
    return pod, a.pid, b.pid, gpu_uuid(str(pod), 0), gpu_uuid(str(pod), 1)


GPU_QUERY = "--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu"


def test_query_gpu_noheader_nounits(busy) -> None:
    pod, _, _, u0, u1 = busy
    assert smi(pod, GPU_QUERY, "--format=csv,noheader,nounits") == (
        0,
        (
            f"0, {u0}, NVIDIA GeForce RTX 4090, 24564, 19600, 4964, 0\n"
            f"1, {u1}, NVIDIA RTX A6000, 49140, 30000, 19140, 0\n"
        ),
        "",
    )


def test_query_gpu_with_units_and_with_header(busy) -> None:
    pod, *_ = busy
    q = "--query-gpu=index,name,memory.total,memory.used,memory.free,utilization.gpu"
    assert smi(pod, q, "--format=csv,noheader")[1] == (
        "0, NVIDIA GeForce RTX 4090, 24564 MiB, 19600 MiB, 4964 MiB, 0 %\n"
        "1, NVIDIA RTX A6000, 49140 MiB, 30000 MiB, 19140 MiB, 0 %\n"
    )
    assert smi(pod, q, "--format=csv")[1] == (
        "index, name, memory.total [MiB], memory.used [MiB], memory.free [MiB], utilization.gpu [%]\n"
        "0, NVIDIA GeForce RTX 4090, 24564 MiB, 19600 MiB, 4964 MiB, 0 %\n"
        "1, NVIDIA RTX A6000, 49140 MiB, 30000 MiB, 19140 MiB, 0 %\n"
    )
    assert smi(pod, q, "--format=csv,nounits")[1].splitlines()[1] == (
        "0, NVIDIA GeForce RTX 4090, 24564, 19600, 4964, 0"
    )


def test_fields_in_any_order_and_gpu_selection(busy) -> None:
    pod, *_ = busy
    assert (
        smi(
            pod,
            "--query-gpu=memory.free,memory.reserved,index",
            "--format=csv,noheader,nounits",
            "-i",
            "1",
        )[1]
        == "19140, 0, 1\n"
    )
    assert smi(pod, "--query-gpu", "index,count", "--format", "csv,noheader")[1] == "0, 2\n1, 2\n"


def test_query_compute_apps_one_line_per_process_and_gpu(busy) -> None:
    pod, a, b, u0, u1 = busy
    q = "--query-compute-apps=pid,process_name,used_memory,gpu_uuid"
    lines = sorted(smi(pod, q, "--format=csv,noheader,nounits")[1].splitlines())
    assert lines == sorted(
        [
            f"{a}, /usr/local/bin/llama-server, 19100, {u0}",
            f"{b}, /usr/bin/python3, 500, {u0}",
            f"{b}, /usr/bin/python3, 30000, {u1}",
        ]
    )
    header, *rows = smi(pod, "--query-compute-apps=gpu_uuid,used_memory,pid", "--format=csv")[
        1
    ].splitlines()
    assert header == "gpu_uuid, used_gpu_memory [MiB], pid"
    assert f"{u1}, 30000 MiB, {b}" in rows


def test_no_processes_prints_nothing(pod: Path) -> None:
    q = "--query-compute-apps=pid,process_name,used_memory,gpu_uuid"
    assert smi(pod, q, "--format=csv,noheader,nounits") == (0, "", "")
    assert smi(pod, q, "--format=csv") == (
        0,
        "pid, process_name, used_gpu_memory [MiB], gpu_uuid\n",
        "",
    )


def test_dead_and_zombie_processes_are_not_shown(pod: Path, sleeper) -> None:
    gone, zombie = sleeper(), sleeper()
    for p in (gone, zombie):
        SimGpus(pod).allocate(p.pid, {0: 8000}, "x")
    os.kill(gone.pid, signal.SIGKILL)
    gone.wait()
    os.kill(zombie.pid, signal.SIGKILL)  # left unreaped: a zombie
    assert wait_for(lambda: proc_start_time(zombie.pid) is None)
    q = "--query-compute-apps=pid,used_memory"
    assert smi(pod, q, "--format=csv,noheader,nounits") == (0, "", "")
    assert smi(pod, "--query-gpu=memory.used", "--format=csv,noheader,nounits")[1] == "0\n0\n"


def test_list_gpus(pod: Path) -> None:
    assert smi(pod, "-L")[1] == (
        f"GPU 0: NVIDIA GeForce RTX 4090 (UUID: {gpu_uuid(str(pod), 0)})\n"
        f"GPU 1: NVIDIA RTX A6000 (UUID: {gpu_uuid(str(pod), 1)})\n"
    )


def test_bare_call_prints_a_table(busy) -> None:
    pod, a, *_ = busy
    code, out, _ = smi(pod)
    assert code == 0
    assert "NVIDIA GeForce RTX 4090" in out and "19600MiB /  24564MiB" in out
    assert f"{a}   /usr/local/bin/llama-server" in out


def test_unknown_field_and_bad_arguments_exit_2(pod: Path) -> None:
    assert smi(pod, "--query-gpu=index,memory.bogus", "--format=csv") == (
        2,
        "",
        'Field "memory.bogus" is not a valid field to query.\n\n',
    )
    code, _, err = smi(pod, "--frobnicate")
    assert code == 2 and "Invalid combination of input arguments" in err
    assert smi(pod, "--query-gpu=index")[0] == 2  # --format is required


def test_without_a_sim_dir_it_fails_like_a_machine_without_driver(tmp_path: Path) -> None:
    for env in ({}, {"GPUMOD_SIM_DIR": str(tmp_path / "nothing")}):
        code, out, _ = run(["--query-gpu=index", "--format=csv"], env)
        assert code == 9
        assert out.startswith(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        )


def test_the_bin_script_runs_as_a_real_command(busy) -> None:
    pod, _, _, u0, _ = busy
    env = {k: v for k, v in os.environ.items() if k != "GPUMOD_SIM_DIR"}
    env["PATH"] = f"{pod / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=index,uuid,memory.used", "--format=csv,noheader,nounits"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout  # no GPUMOD_SIM_DIR: the script knows its pod
    assert out.splitlines()[0] == f"0, {u0}, 19600"
    missing = subprocess.run(
        [str(pod / "bin" / "nvidia-smi")],
        capture_output=True,
        text=True,
        env=env | {"GPUMOD_SIM_DIR": str(pod / "elsewhere")},
        timeout=10,
    )
    assert missing.returncode == 9


def test_q_x_is_the_xml_log_the_parser_reads_like_the_csv(busy) -> None:
    from gpumod.drivers.probes.nvidia_smi import parse_gpus, parse_xml

    pod, a, b, u0, u1 = busy
    code, out, err = smi(pod, "-q", "-x")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[:3] == [
        '<?xml version="1.0" ?>',
        '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">',
        "<nvidia_smi_log>",
    ]
    assert "\t<attached_gpus>2</attached_gpus>" in lines and "\t\t\t<used>19600 MiB</used>" in lines
    gpus, apps = parse_xml(out)
    csv = smi(pod, "--query-gpu=index,uuid,name,memory.total,memory.used", "--format=csv,noheader,nounits")[1]
    assert gpus == parse_gpus(csv)
    assert sorted(apps) == sorted([(a, 19100, u0), (b, 500, u0), (b, 30000, u1)])
    assert smi(pod, "-q", "-x", "-i", "1")[1].count("<gpu id=") == 1


def test_q_without_x_is_refused(pod) -> None:
    assert smi(pod, "-q")[0] == 2 and smi(pod, "-x")[0] == 2
