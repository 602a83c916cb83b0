"""Makes docs/tui.svg (and docs/tui.png when `rsvg-convert` is there): the dashboard on a fresh
copy of `specs/` after `/switch rag` and `/simulate --mode everything`, on the sim pod.

Not a test: run it by hand after a visible change (the pod is brought down at the end).

    .venv/bin/python tests/tui/screenshot.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "e2e")]

from e2e_helpers import ROOT, Gpumod, kill_recorded, use_free_ports  # noqa: E402


async def shoot(out: Path) -> None:
    from gpumod.tui.app import GpumodTui

    app = GpumodTui("specs", refresh_s=2.0)
    async with app.run_test(size=(132, 46)) as pilot:
        for line in ("/switch rag", "/simulate --mode everything"):
            await pilot.press(*line, "enter")
            await pilot.pause(0.5)
            deadline = time.monotonic() + 120
            while (app.pass_running or app.workers) and time.monotonic() < deadline:
                await pilot.pause(0.2)
        await pilot.pause(2.5)  # one more observation after the last step
        out.write_text(app.export_screenshot(title="gpumod tui specs/"))


def main() -> None:
    out = ROOT / "docs" / "tui.svg"
    with tempfile.TemporaryDirectory(prefix="gpumod-shot-") as tmp:
        specs, home = Path(tmp) / "specs", Path(tmp) / "home"
        shutil.copytree(ROOT / "specs", specs)
        use_free_ports(specs)
        os.environ["GPUMOD_HOME"] = str(home)
        os.chdir(tmp)
        try:
            asyncio.run(shoot(out))
        finally:
            Gpumod(home=home, specs=specs).run("down", str(specs), "--yes")
            kill_recorded(home)
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", str(out), "-o", str(out.with_suffix(".png"))], check=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
