"""Set up the directory of one simulated GPU pod: its GPUs and an ``nvidia-smi`` on its PATH.

``gpumod`` talks to a sim pod exactly as to a real one: it runs ``nvidia-smi`` there and starts
servers that find their GPUs through ``$GPUMOD_SIM_DIR``. This module makes that directory true
to the Pod spec before each use: ``gpus.json`` from the declared GPUs (allocations of running
sim servers are kept) and ``bin/nvidia-smi``, a script running ``gpumod.sim.nvidia_smi`` with
the pod's Python. Idempotent and cheap: files are only written when their content changes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from gpumod.sim.gpu import gpu_uuid

__all__ = ["ensure_sim_pod", "nvidia_smi_script"]


def nvidia_smi_script(python: str, sim_dir: Path) -> str:
    """The ``bin/nvidia-smi`` text: ``$GPUMOD_SIM_DIR`` wins, this pod's directory otherwise.

    It runs with ``python -S`` and loads the two stdlib-only modules it needs straight from their
    files (editable installs included): no site-packages scan, so it starts about as fast as the
    real nvidia-smi and does not dominate observe timings."""
    here = Path(__file__).resolve().parent
    return (
        f"#!{python} -S\n"
        '"""nvidia-smi stand-in of a gpumod simulated pod (generated; do not edit)."""\n'
        "import os\n"
        "import sys\n"
        "import types\n"
        "from importlib._bootstrap import module_from_spec  # importlib.util's own, without its imports\n"
        "from importlib._bootstrap_external import spec_from_file_location\n\n"
        f"os.environ.setdefault('GPUMOD_SIM_DIR', {str(sim_dir)!r})\n"
        "for name in ('gpumod', 'gpumod.sim'):\n"
        "    sys.modules.setdefault(name, types.ModuleType(name))\n"
        "for name in ('gpu', 'nvidia_smi'):\n"
        f"    spec = spec_from_file_location('gpumod.sim.' + name, {str(here)!r} + '/' + name + '.py')\n"
        "    module = module_from_spec(spec)\n"
        "    sys.modules[spec.name] = module\n"
        "    spec.loader.exec_module(module)\n\n"
        "sys.exit(sys.modules['gpumod.sim.nvidia_smi'].main())\n"
    )


def _write_if_changed(path: Path, text: str, mode: int | None = None) -> None:
    try:
        same = path.read_text() == text
    except (FileNotFoundError, UnicodeDecodeError):
        same = False
    if not same:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        if mode is not None:
            tmp.chmod(mode)
        os.replace(tmp, path)
    elif mode is not None and (path.stat().st_mode & 0o777) != mode:
        path.chmod(mode)


def ensure_sim_pod(
    sim_dir: Path, gpus: list[tuple[str, int]], python: str = sys.executable
) -> Path:
    """Make ``sim_dir`` a sim pod with ``gpus`` (name, MiB); return the bin dir to put on PATH."""
    sim_dir = Path(sim_dir).expanduser().absolute()
    bindir = sim_dir / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    (sim_dir / "alloc").mkdir(exist_ok=True)
    (sim_dir / "lock").touch(exist_ok=True)
    listing = {
        "gpus": [
            {
                "index": i,
                "name": name,
                "memory_mb": int(memory_mb),
                "uuid": gpu_uuid(str(sim_dir), i),
            }
            for i, (name, memory_mb) in enumerate(gpus)
        ]
    }
    _write_if_changed(sim_dir / "gpus.json", json.dumps(listing, indent=2) + "\n")
    _write_if_changed(bindir / "nvidia-smi", nvidia_smi_script(python, sim_dir), 0o755)
    return bindir


def main(argv: list[str]) -> int:
    """``python -m gpumod.sim.pod DIR GPUS_JSON``: set up a pod's simulated GPUs over SSH (what
    the pod agent asks for when its quick check, ``podside.sim_ready``, fails)."""
    directory = Path(argv[0]).expanduser()
    ensure_sim_pod(directory, [(str(n), int(mb)) for n, mb in json.loads(argv[1])], sys.executable)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
