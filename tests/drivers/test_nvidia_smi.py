"""nvidia-smi parsers (CSV and ``-q -x``) on recorded outputs: placeholders, blanks, extra spaces,
extra columns, graphics processes, old schemas."""

from __future__ import annotations

from pathlib import Path

from gpumod.core.model import GpuInfo
from gpumod.drivers.probes.nvidia_smi import parse_gpus, parse_xml, uuid_to_index

DATA = Path(__file__).parent / "data"
G0 = "GPU-6b3fe2a8-3d3c-8b1e-5b2e-4f3e0b8f9a11"
G1 = "GPU-0d1e3c6a-77aa-4c1d-9e0f-2b9d6c3e5f22"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_two_gpus():
    assert parse_gpus(read("nvidia_smi_gpus_2x4090.csv")) == (
        GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564, 19876, G0),
        GpuInfo(1, "NVIDIA GeForce RTX 4090", 24564, 4, G1),
    )


def test_not_available_memory_reads_as_zero():
    (gpu,) = parse_gpus(read("nvidia_smi_gpus_gb10_na.csv"))
    assert (gpu.name, gpu.total_mb, gpu.used_mb) == ("NVIDIA GB10", 0, 0)


def test_extra_spaces_blank_lines_and_not_supported():
    assert parse_gpus(read("nvidia_smi_gpus_spaces.csv")) == (GpuInfo(0, "NVIDIA H100 80GB HBM3", 81559, 0, "GPU-a1"),)


def test_blank_and_garbage_output():
    assert parse_gpus(read("nvidia_smi_gpus_blank.csv")) == ()
    assert parse_gpus("No devices were found\n") == ()
    assert parse_gpus("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n") == ()


def test_gpus_sorted_by_index_and_names_with_commas_survive():
    text = "1, GPU-b, Odd, Name, 100, 5\n0, GPU-a, Plain, 200, 7\n"
    assert [(g.index, g.name) for g in parse_gpus(text)] == [(0, "Plain"), (1, "Odd, Name")]


def test_xml_gpus_in_document_order_and_compute_processes_only():
    gpus, apps = parse_xml(read("nvidia_smi_q_2x4090.xml"))
    assert gpus == (  # index = order in the log, not minor_number (swapped in this sample)
        GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564, 19876, G0),
        GpuInfo(1, "NVIDIA GeForce RTX 4090", 24564, 604, G1),
    )
    assert apps == [(31337, 19120, G0), (31338, 740, G0), (5150, 600, G1)]  # Xorg (type G) left out


def test_xml_with_the_supported_clocks_cut_out_reads_the_same():
    from gpumod.drivers.agent.podside_base import _cut

    text = read("nvidia_smi_q_2x4090.xml")
    short = _cut(text, "<supported_clocks>", "</supported_clocks>")
    assert len(short) < len(text) // 4 and parse_xml(short) == parse_xml(text)


def test_xml_placeholders_read_as_zero():
    gpus, apps = parse_xml(read("nvidia_smi_q_gb10_na.xml"))
    assert gpus == (GpuInfo(0, "NVIDIA GB10", 0, 0, "GPU-a1b2c3d4-0000-1111-2222-333344445555"),)
    assert apps == [(777, 0, "GPU-a1b2c3d4-0000-1111-2222-333344445555")]


def test_xml_old_schema_compute_processes():
    gpus, apps = parse_xml(read("nvidia_smi_q_old_schema.xml"))
    assert [(g.index, g.name, g.total_mb, g.used_mb) for g in gpus] == [(0, "Tesla K80", 11439, 10)]
    assert apps == [(2024, 9000, "GPU-0f0e0d0c-aaaa-bbbb-cccc-ddddeeeeffff")]


def test_xml_not_xml_is_nothing():
    assert parse_xml("") == ((), [])
    assert parse_xml("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n") == ((), [])


def test_uuid_to_index():
    assert uuid_to_index(parse_gpus(read("nvidia_smi_gpus_2x4090.csv"))) == {G0: 0, G1: 1}
