"""``watch``: apply on every change of the spec directory and on a timer, until a signal.

File events and the timer only *request* a pass; requests arriving during a pass are coalesced
into one more pass. The directory is watched (not the files: editors save by atomic rename,
which a watch on the file itself would miss). SIGINT/SIGTERM end the loop and leave services
running. Specs that are invalid when the watch starts are refused (``SpecError``: the caller exits
2, nothing touched); once it runs, a pass that fails — a bad edit included — is reported as
``RunFailed`` (with the traceback when it is a bug) and the loop keeps going: an unattended
controller never dies on one bad pass. Everything it has to say goes through the ``Reporter``; it
prints nothing.
"""

from __future__ import annotations

import asyncio
import signal
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from watchfiles import Change, awatch

from gpumod.errors import GpumodError
from gpumod.ops.apply import ApplyResult, apply
from gpumod.ops.events import Note, Reporter, RunFailed
from gpumod.ops.validate import validate
from gpumod.wiring import Fleet

if TYPE_CHECKING:
    from gpumod.metrics import WatchMetrics

__all__ = ["watch"]

SPEC_SUFFIXES = (".yaml", ".yml")


def spec_changes(changes: Iterable[tuple[Change, str]], root: Path) -> list[str]:
    """The names of the spec files among ``changes`` (each once): YAML files the loader reads, so
    not an editor's temporary file, a hidden one (``.#pod.yaml``) or one under a hidden folder."""
    names = set()
    base = root.resolve()
    for _, path in changes:
        where = Path(path)
        try:
            parts = where.resolve().relative_to(base).parts
        except ValueError:
            parts = (where.name,)
        if where.name.endswith(SPEC_SUFFIXES) and not any(part.startswith(".") for part in parts):
            names.add(where.name)
    return sorted(names)


async def watch(
    directory: Path,
    pods: Sequence[str] | None,
    *,
    reporter: Reporter,
    interval: float = 60.0,
    stop: asyncio.Event | None = None,
    metrics_port: int | None = None,
) -> None:
    """Until ``stop`` (or a signal): one apply pass per request, on one kept fleet (each pod's
    connection lives as long as the watch; its lock is taken per pass). With ``metrics_port``,
    Prometheus metrics of the passes are served on 127.0.0.1. Raises ``SpecError`` when the specs
    are invalid to begin with."""
    checked = validate(directory)
    if checked.error is not None:
        raise checked.error
    metrics, stop_server = _serve_metrics(metrics_port)
    fleet = Fleet([], specs=str(directory))
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
            names = spec_changes(changes, root)
            if names:
                reporter.event(Note(f"change detected: {', '.join(names)}"))
                wanted.set()

    async def timer() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except asyncio.TimeoutError:
                wanted.set()

    tasks = [asyncio.create_task(files()), asyncio.create_task(timer())]
    reporter.event(Note(f"watching {directory} (re-observing every {interval:g} s); Ctrl+C to stop", detail=False))
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
            pass_task = asyncio.create_task(_one_pass(directory, pods, reporter, fleet=fleet, metrics=metrics))
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
        await fleet.close()
        if stop_server is not None:
            stop_server()
        reporter.event(Note("watch stopped; services keep running", detail=False))


def _serve_metrics(port: int | None) -> tuple["WatchMetrics | None", Callable[[], None] | None]:
    if port is None:
        return None, None
    from gpumod.metrics import WatchMetrics  # prometheus_client: only when metrics are asked for

    metrics = WatchMetrics()
    return metrics, metrics.serve(port)


async def _one_pass(
    directory: Path,
    pods: Sequence[str] | None,
    reporter: Reporter,
    *,
    fleet: Fleet | None = None,
    metrics: "WatchMetrics | None" = None,
) -> None:
    started = time.monotonic()
    if metrics is not None:
        reporter = metrics.reporter(reporter)
    result = None
    try:
        result = await _apply(directory, pods, reporter, fleet)
    finally:
        if metrics is not None:
            metrics.record_pass(result, time.monotonic() - started)


async def _apply(
    directory: Path, pods: Sequence[str] | None, reporter: Reporter, fleet: Fleet | None
) -> ApplyResult | None:
    """One apply run (its recap goes out as ``RunFinished``); None when it raised."""
    try:
        return await apply(directory, pods, reporter=reporter, fleet=fleet)
    except GpumodError as err:
        reporter.event(RunFailed(err))
    except Exception as err:  # a bug: say so, and keep watching (the next pass may well succeed)
        reporter.event(RunFailed(err, traceback.format_exc().rstrip()))
    return None
