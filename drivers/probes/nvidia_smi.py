"""Pure parsers of ``nvidia-smi --format=csv,noheader,nounits`` output.

The pod agent runs
  ``nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used``  and
  ``nvidia-smi --query-compute-apps=pid,used_memory,gpu_uuid``
and these functions read what it printed. Fields are split on ``,`` and stripped; anything in
square brackets (``[N/A]``, ``[Not Supported]``, ``[Insufficient Permissions]``) is missing and
reads as 0 MiB; lines that are not data (blank, warnings) are skipped.
"""

from __future__ import annotations

from gpumod.core.model import GpuInfo

__all__ = ["APPS_ARGV", "GPU_ARGV", "parse_apps", "parse_gpus", "uuid_to_index"]

GPU_ARGV = ("nvidia-smi", "--query-gpu=index,uuid,name,memory.total,memory.used", "--format=csv,noheader,nounits")
APPS_ARGV = ("nvidia-smi", "--query-compute-apps=pid,used_memory,gpu_uuid", "--format=csv,noheader,nounits")


def _mib(field: str) -> int | None:
    """A MiB figure; None when nvidia-smi says it has none (``[N/A]``...)."""
    text = field.strip()
    if not text or text.startswith("[") or text.upper() in ("N/A", "NOT SUPPORTED"):
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


def parse_apps(csv_text: str) -> list[tuple[int, int, str]]:
    """Compute-app lines → ``(pid, used_mb, gpu_uuid)``.

    Accepts ``pid, used_memory, gpu_uuid`` and also ``pid, process_name, used_memory, gpu_uuid``
    (the first field is the pid, the last the UUID, the one before it the MiB).
    """
    apps: list[tuple[int, int, str]] = []
    for line in csv_text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 3:
            continue
        try:
            pid = int(fields[0])
        except ValueError:
            continue
        apps.append((pid, _mib(fields[-2]) or 0, fields[-1]))
    return apps


def uuid_to_index(gpus: tuple[GpuInfo, ...]) -> dict[str, int]:
    return {g.uuid: g.index for g in gpus if g.uuid}
