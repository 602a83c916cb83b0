"""Log calls below the level cost no structlog import (an `apply` at the default level logs
nothing: its start-up stays as light as a `plan`'s); calls at the level print, with the
reconcile id bound around the run reaching the lines of the tasks it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import asyncio, sys
from gpumod.logconfig import bound_reconcile_id, configure_logging, get_logger
configure_logging(int(sys.argv[1]), sys.argv[2])
log = get_logger("gpumod.test")

async def step():
    log.bind(pod="p", service="s").info("step.started", wave=1)
    log.debug("detail")

async def main():
    with bound_reconcile_id("abc123"):
        await asyncio.gather(step())
    log.info("after")

asyncio.run(main())
print("structlog" in sys.modules)
"""


def _run(verbosity: int, fmt: str) -> tuple[bool, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "GPUMOD_LOG"}
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(verbosity), fmt], env=env, capture_output=True,
                         text=True, check=True)
    return res.stdout.strip() == "True", res.stderr.splitlines()


def test_below_the_level_nothing_is_printed_and_structlog_is_not_imported() -> None:
    assert _run(0, "text") == (False, [])


def test_json_lines_carry_the_bound_fields_and_the_reconcile_id_only_inside_the_run() -> None:
    imported, lines = _run(0, "json")
    events = [json.loads(line) for line in lines]
    assert imported
    assert [(e["event"], e.get("reconcile_id"), e.get("pod")) for e in events] == [
        ("step.started", "abc123", "p"), ("after", None, None),
    ]


def test_debug_lines_with_vv() -> None:
    _, lines = _run(2, "text")
    assert [line.split("event=")[1].split()[0] for line in lines] == ["'step.started'", "'detail'", "'after'"]
    assert "reconcile_id='abc123'" in lines[0] and "pod='p'" in lines[0]
