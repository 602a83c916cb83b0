"""An ``nvidia-smi`` stand-in for sim pods, printing the real output formats from the sim GPUs.

gpumod observes every pod by running ``nvidia-smi`` and parsing its CSV. On a sim pod the same
command must work and print the same bytes a real driver would, computed from the allocations
in ``$GPUMOD_SIM_DIR`` (see ``gpumod.sim.gpu``). Supported: ``--query-gpu=...``,
``--query-compute-apps=...`` with ``--format=csv[,noheader][,nounits]``, ``-q -x`` (the XML
log, with the elements gpumod reads: names, UUIDs, framebuffer memory and processes, laid out
and indented as the real one), ``-i/--id``, ``-L/--list-gpus`` and a bare call (a short table). Without a sim directory
it fails like a machine without a driver (exit 9).
"""

from __future__ import annotations

import os
import sys
import time
from collections import namedtuple
from collections.abc import Callable, Sequence

from gpumod.sim.gpu import Allocation, SimGpu, SimGpus

__all__ = ["main", "DRIVER_VERSION", "CUDA_VERSION"]

DRIVER_VERSION = "550.54.15"
CUDA_VERSION = "12.4"

NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)
BAD_ARGS = "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n"


# named tuples and a plain class, not dataclasses: this runs on every observation (see gpumod.sim.gpu)
Field = namedtuple("Field", "header unit")  # canonical name as printed in the csv header; "" | "MiB" | "%"


class GpuRow(namedtuple("GpuRow", "gpu used_mb")):  # a SimGpu and the MiB its processes use
    __slots__ = ()

    @property
    def free_mb(self) -> int:
        return max(0, self.gpu.memory_mb - self.gpu.reserved_mb - self.used_mb)


GPU_FIELDS: dict[str, tuple[Field, Callable[[GpuRow, int], object]]] = {
    "index": (Field("index", ""), lambda r, n: r.gpu.index),
    "uuid": (Field("uuid", ""), lambda r, n: r.gpu.uuid),
    "gpu_uuid": (Field("uuid", ""), lambda r, n: r.gpu.uuid),
    "name": (Field("name", ""), lambda r, n: r.gpu.name),
    "gpu_name": (Field("name", ""), lambda r, n: r.gpu.name),
    "count": (Field("count", ""), lambda r, n: n),
    "driver_version": (Field("driver_version", ""), lambda r, n: DRIVER_VERSION),
    "pci.bus_id": (Field("pci.bus_id", ""), lambda r, n: _bus_id(r.gpu.index)),
    "memory.total": (Field("memory.total", "MiB"), lambda r, n: r.gpu.memory_mb),
    "memory.reserved": (Field("memory.reserved", "MiB"), lambda r, n: r.gpu.reserved_mb),
    "memory.used": (Field("memory.used", "MiB"), lambda r, n: r.used_mb),
    "memory.free": (Field("memory.free", "MiB"), lambda r, n: r.free_mb),
    "utilization.gpu": (Field("utilization.gpu", "%"), lambda r, n: 0),
    "utilization.memory": (Field("utilization.memory", "%"), lambda r, n: 0),
}

AppRow = tuple[Allocation, SimGpu]
APP_FIELDS: dict[str, tuple[Field, Callable[[AppRow], object]]] = {
    "pid": (Field("pid", ""), lambda r: r[0].pid),
    "process_name": (Field("process_name", ""), lambda r: r[0].process_name),
    "name": (Field("process_name", ""), lambda r: r[0].process_name),
    "used_memory": (Field("used_gpu_memory", "MiB"), lambda r: r[0].gpus[r[1].index]),
    "used_gpu_memory": (Field("used_gpu_memory", "MiB"), lambda r: r[0].gpus[r[1].index]),
    "gpu_uuid": (Field("gpu_uuid", ""), lambda r: r[1].uuid),
    "gpu_name": (Field("gpu_name", ""), lambda r: r[1].name),
    "gpu_bus_id": (Field("gpu_bus_id", ""), lambda r: _bus_id(r[1].index)),
}


def _bus_id(index: int) -> str:
    return f"00000000:{index + 1:02X}:00.0"


class Args:
    def __init__(self) -> None:
        self.query_gpu: str | None = None
        self.query_apps: str | None = None
        self.fmt: str | None = None
        self.ids: str | None = None
        self.list_gpus = False
        self.query = False
        self.xml = False


class UsageError(Exception):
    pass


def parse_args(argv: Sequence[str]) -> Args:
    args = Args()
    valued = {
        "--query-gpu": "query_gpu",
        "--query-compute-apps": "query_apps",
        "--format": "fmt",
        "--id": "ids",
        "-i": "ids",
    }
    it = iter(argv)
    for token in it:
        name, eq, value = token.partition("=")
        if name in valued:
            if not eq:
                value = next(it, "")
            if not value:
                raise UsageError
            setattr(args, valued[name], value)
        elif token in ("-L", "--list-gpus"):
            args.list_gpus = True
        elif token in ("-q", "--query"):
            args.query = True
        elif token in ("-x", "--xml-format"):
            args.xml = True
        else:
            raise UsageError
    return args


def _render(value: object, unit: str, units: bool) -> str:
    return f"{value} {unit}" if units and unit else str(value)


def _csv(fields: list[Field], rows: list[list[object]], fmt: set[str]) -> list[str]:
    lines: list[str] = []
    if "noheader" not in fmt:
        lines.append(", ".join(f"{f.header} [{f.unit}]" if f.unit else f.header for f in fields))
    units = "nounits" not in fmt
    for row in rows:
        lines.append(", ".join(_render(v, f.unit, units) for v, f in zip(row, fields, strict=True)))
    return lines


def _pick_gpus(gpus: list[SimGpu], ids: str | None) -> list[SimGpu]:
    if ids is None:
        return gpus
    wanted = [s.strip() for s in ids.split(",") if s.strip()]
    out = [g for g in gpus if str(g.index) in wanted or g.uuid in wanted]
    if len(out) != len(wanted):
        raise LookupError
    return out


def _table(rows: list[GpuRow], apps: list[AppRow], driver: str = DRIVER_VERSION) -> list[str]:
    width = 89
    bar = "+" + "-" * (width - 2) + "+"
    out = [
        bar,
        f"| NVIDIA-SMI {driver} (gpumod sim)   Driver Version: {driver}"
        f"   CUDA Version: {CUDA_VERSION}".ljust(width - 1)
        + "|",
        "|" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 20 + "|",
        "| GPU  Name".ljust(42) + "| Memory-Usage".ljust(25) + "| GPU-Util".ljust(21) + "|",
        "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 20 + "|",
    ]
    for r in rows:
        mem = f"{r.used_mb:>6}MiB / {r.gpu.memory_mb:>6}MiB"
        out.append(
            f"| {r.gpu.index:>3}  {r.gpu.name[:34]}".ljust(42)
            + f"| {mem}".ljust(25)
            + "|      0%".ljust(21)
            + "|"
        )
    out += ["|" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 20 + "|", "", bar]
    out.append("| Processes:".ljust(width - 1) + "|")
    out.append("|  GPU      PID   Process name".ljust(width - 12) + "GPU Memory |")
    out.append("|" + "=" * (width - 2) + "|")
    if not apps:
        out.append("|  No running processes found".ljust(width - 1) + "|")
    for alloc, gpu in apps:
        left = f"|  {gpu.index:>3}  {alloc.pid:>7}   {alloc.process_name[:50]}"
        out.append(left.ljust(width - 12) + f"{alloc.gpus[gpu.index]:>7}MiB |")
    out.append(bar)
    return out


def _esc(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml(rows: list[GpuRow], apps: list[AppRow]) -> str:
    """``nvidia-smi -q -x``: the real document's layout (declaration, DOCTYPE, tab indents)."""
    out = [
        '<?xml version="1.0" ?>',
        '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">',
        "<nvidia_smi_log>",
        f"\t<timestamp>{time.strftime('%a %b %d %H:%M:%S %Y')}</timestamp>",
        f"\t<driver_version>{DRIVER_VERSION}</driver_version>",
        f"\t<cuda_version>{CUDA_VERSION}</cuda_version>",
        f"\t<attached_gpus>{len(rows)}</attached_gpus>",
    ]
    for r in rows:
        g = r.gpu
        out += [
            f'\t<gpu id="{_bus_id(g.index)}">',
            f"\t\t<product_name>{_esc(g.name)}</product_name>",
            f"\t\t<uuid>{g.uuid}</uuid>",
            f"\t\t<minor_number>{g.index}</minor_number>",
            "\t\t<fb_memory_usage>",
            f"\t\t\t<total>{g.memory_mb} MiB</total>",
            f"\t\t\t<reserved>{g.reserved_mb} MiB</reserved>",
            f"\t\t\t<used>{r.used_mb} MiB</used>",
            f"\t\t\t<free>{r.free_mb} MiB</free>",
            "\t\t</fb_memory_usage>",
            "\t\t<processes>",
        ]
        for alloc, gpu in apps:
            if gpu.index != g.index:
                continue
            out += [
                "\t\t\t<process_info>",
                "\t\t\t\t<gpu_instance_id>N/A</gpu_instance_id>",
                "\t\t\t\t<compute_instance_id>N/A</compute_instance_id>",
                f"\t\t\t\t<pid>{alloc.pid}</pid>",
                "\t\t\t\t<type>C</type>",
                f"\t\t\t\t<process_name>{_esc(alloc.process_name)}</process_name>",
                f"\t\t\t\t<used_memory>{alloc.gpus[g.index]} MiB</used_memory>",
                "\t\t\t</process_info>",
            ]
        out += ["\t\t</processes>", "\t</gpu>"]
    out.append("</nvidia_smi_log>")
    return "\n".join(out) + "\n"


def run(argv: Sequence[str], env: dict[str, str] | os._Environ[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``nvidia-smi argv`` against ``$GPUMOD_SIM_DIR``."""
    directory = env.get("GPUMOD_SIM_DIR")
    sim = SimGpus(directory) if directory else None
    if sim is None or not sim.exists():
        return 9, NO_DRIVER, ""
    try:
        args = parse_args(argv)
    except UsageError:
        return 2, "", BAD_ARGS
    try:
        gpus = _pick_gpus(sim.gpus(), args.ids)
    except LookupError:
        return 6, "", "No devices were found\n"
    allocations = sim.allocations()
    used = {g.index: sum(a.gpus.get(g.index, 0) for a in allocations) for g in gpus}
    rows = [GpuRow(g, used[g.index]) for g in gpus]
    apps: list[AppRow] = [(a, g) for g in gpus for a in allocations if g.index in a.gpus]

    if args.list_gpus:
        return 0, "".join(f"GPU {g.index}: {g.name} (UUID: {g.uuid})\n" for g in gpus), ""
    if args.query or args.xml:
        if not (args.query and args.xml) or args.query_gpu or args.query_apps:
            return 2, "", "gpumod sim: of -q, only -q -x (the XML log) is simulated\n" + BAD_ARGS
        return 0, _xml(rows, apps), ""
    query = args.query_gpu or args.query_apps
    if query is None:
        # GPUMOD_SIM_DRIVER_VERSION: a pod's sim: driver_version (an old driver, for set-up refusals)
        driver = env.get("GPUMOD_SIM_DRIVER_VERSION") or DRIVER_VERSION
        return 0, "\n".join(_table(rows, apps, driver)) + "\n", ""
    if args.query_gpu and args.query_apps:
        return 2, "", BAD_ARGS
    if args.fmt is None:
        return 2, "", "Option --format must be specified with --query-*.\n" + BAD_ARGS
    fmt = {p.strip() for p in args.fmt.split(",")}
    if "csv" not in fmt or not fmt <= {"csv", "noheader", "nounits"}:
        return 2, "", f'"{args.fmt}" is not a valid format.\n' + BAD_ARGS
    names = [n.strip().lower() for n in query.split(",") if n.strip()]
    table = GPU_FIELDS if args.query_gpu else APP_FIELDS
    for n in names:
        if n not in table:
            return 2, "", f'Field "{n}" is not a valid field to query.\n\n'
    fields = [table[n][0] for n in names]
    if args.query_gpu:
        values = [[GPU_FIELDS[n][1](r, len(gpus)) for n in names] for r in rows]
    else:
        values = [[APP_FIELDS[n][1](a) for n in names] for a in apps]
    lines = _csv(fields, values, fmt)
    return 0, "".join(line + "\n" for line in lines), ""


def main(argv: Sequence[str] | None = None) -> int:
    code, out, err = run(sys.argv[1:] if argv is None else argv, os.environ)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
