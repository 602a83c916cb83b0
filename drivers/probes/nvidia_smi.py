"""Pure parsers of what ``nvidia-smi`` prints on a pod.

An observation runs ONE ``nvidia-smi -q -x`` (``XML_ARGV``: GPUs and their processes in one
process, where the two CSV queries took two); ``parse_xml`` reads it. GPUs are numbered in the
order the XML lists them (nvidia-smi's index order; ``minor_number`` is the device node, not the
index). Only compute processes count (type ``C`` or ``C+G``, like ``--query-compute-apps``).
The executor's VRAM polls run ``nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used
--format=csv,noheader,nounits`` (``GPU_ARGV``), read by ``parse_gpus``: fields are split on
``,`` and stripped; lines that are not data (blank, warnings) are skipped. In both formats a
missing figure (``[N/A]``, ``N/A``, ``[Not Supported]``, ``[Insufficient Permissions]``) reads as
0 MiB.
"""

from __future__ import annotations

from gpumod.core.model import GpuInfo

__all__ = ["GPU_ARGV", "XML_ARGV", "parse_gpus", "parse_xml", "uuid_to_index"]

GPU_ARGV = ("nvidia-smi", "--query-gpu=index,uuid,name,memory.total,memory.used", "--format=csv,noheader,nounits")
XML_ARGV = ("nvidia-smi", "-q", "-x")


def _mib(field: str) -> int | None:
    """A MiB figure; None when nvidia-smi says it has none (``[N/A]``...)."""
    text = field.strip()
    if not text or text.startswith("[") or text.upper() in ("N/A", "NOT SUPPORTED", "INSUFFICIENT PERMISSIONS"):
        return None
    text = text.removesuffix("MiB").strip()
    try:
        return int(float(text))
    except ValueError:
        return None


def parse_gpus(csv_text: str) -> tuple[GpuInfo, ...]:
    """``index, uuid, name, memory.total, memory.used`` lines → GpuInfo sorted by index."""
    gpus: dict[int, GpuInfo] = {}
    for line in csv_text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 5:
            continue
        try:
            index = int(fields[0])
        except ValueError:
            continue
        name = ", ".join(fields[2:-2])  # a name with a comma survives
        total, used = _mib(fields[-2]), _mib(fields[-1])
        gpus[index] = GpuInfo(index=index, name=name, total_mb=total or 0, used_mb=used or 0, uuid=fields[1])
    return tuple(gpus[i] for i in sorted(gpus))


def parse_xml(xml_text: str) -> tuple[tuple[GpuInfo, ...], list[tuple[int, int, str]]]:
    """``nvidia-smi -q -x`` → (GpuInfo in index order, compute apps as ``(pid, used_mb, gpu_uuid)``).

    Text that is not the XML (a driver error, an empty answer) gives no GPUs and no apps."""
    from xml.etree import ElementTree  # only an observation needs it

    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError:
        return (), []
    gpus: list[GpuInfo] = []
    apps: list[tuple[int, int, str]] = []
    for index, gpu in enumerate(root.findall("gpu")):
        uuid = (gpu.findtext("uuid") or "").strip()
        memory = gpu.find("fb_memory_usage")
        total = _mib(memory.findtext("total") or "") if memory is not None else None
        used = _mib(memory.findtext("used") or "") if memory is not None else None
        name = (gpu.findtext("product_name") or "").strip()
        gpus.append(GpuInfo(index=index, name=name, total_mb=total or 0, used_mb=used or 0, uuid=uuid))
        processes = gpu.find("processes")
        if processes is None:
            processes = gpu.find("compute_processes")  # old drivers (schema v6)
        for proc in processes.findall("process_info") if processes is not None else ():
            if "C" not in (proc.findtext("type") or "C"):
                continue  # a graphics-only process: --query-compute-apps leaves it out too
            try:
                pid = int((proc.findtext("pid") or "").strip())
            except ValueError:
                continue
            apps.append((pid, _mib(proc.findtext("used_memory") or "") or 0, uuid))
    return tuple(gpus), apps


def uuid_to_index(gpus: tuple[GpuInfo, ...]) -> dict[str, int]:
    return {g.uuid: g.index for g in gpus if g.uuid}
