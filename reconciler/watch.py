"""``gpumod watch``: apply on every change of the spec directory and on a timer, until a signal.

File events and the timer only *request* a pass; requests arriving during a pass are coalesced
into one more pass. The directory is watched (not the files: editors save by atomic rename,
which a watch on the file itself would miss). SIGINT/SIGTERM end the loop and leave services
running. A pass that fails in a way gpumod did not expect is reported (with its traceback) and
the loop keeps going: an unattended controller never dies on one bad pass.
"""

from __future__ import annotations

import asyncio
import signal
import traceback
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.text import Text
from watchfiles import Change, awatch

from gpumod import controller
from gpumod.errors import GpumodError, InfeasibleError, SpecError
from gpumod.views import ConsoleReporter, error_lines, render_recap

SPEC_SUFFIXES = (".yaml", ".yml")


def _relevant(changes: set[tuple[Change, str]]) -> bool:
    return any(path.endswith(SPEC_SUFFIXES) for _, path in changes)


async def watch_loop(
    directory: Path,
    pods: Sequence[str] | None,
    *,
    interval: float = 60.0,
    console: Console,
    stop: asyncio.Event | None = None,
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    wanted = asyncio.Event()
    wanted.set()  # the first pass right away

    async def files() -> None:
        root = directory if directory.is_dir() else directory.parent
        async for changes in awatch(root, stop_event=stop, debounce=200, step=20, recursive=True):
            if _relevant(changes):
                names = ", ".join(sorted(Path(p).name for _, p in changes))
                console.print(Text(f"change detected: {names}", style="dim"))
                wanted.set()

    async def timer() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except asyncio.TimeoutError:
                wanted.set()

    tasks = [asyncio.create_task(files()), asyncio.create_task(timer())]
    console.print(Text(f"watching {directory} (re-observing every {interval:g} s); Ctrl+C to stop"))
    try:
        while not stop.is_set():
            waiter = asyncio.create_task(wanted.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if stop.is_set():
                break
            wanted.clear()
            pass_task = asyncio.create_task(_one_pass(directory, pods, console))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({pass_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not pass_task.done():
                pass_task.cancel()
                await asyncio.gather(pass_task, return_exceptions=True)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        console.print(Text("watch stopped; services keep running"))


async def _one_pass(directory: Path, pods: Sequence[str] | None, console: Console) -> None:
    try:
        result = await controller.apply(directory, pods, reporter=ConsoleReporter(console))
    except SpecError as err:
        for problem in err.problems:
            console.print(Text(str(problem)))
        console.print(Text("specs invalid; nothing touched. Waiting for the next change.", style="red"))
        return
    except InfeasibleError as err:
        for inf in err.infeasible:
            console.print(Text(inf.describe()))
        console.print(Text("does not fit; nothing touched. Waiting for the next change.", style="red"))
        return
    except GpumodError as err:
        for line in error_lines(err.message, err.hint):
            console.print(line)
        return
    except Exception:  # a bug: say so, and keep watching (the next pass may well succeed)
        console.print(Text(traceback.format_exc().rstrip()))
        console.print(Text("this is a bug in gpumod (please report it); watching goes on", style="red"))
        return
    for line in render_recap(result):
        console.print(Text(line))
