"""LocalTransport.open_process: a long-running child with pipes (what the pod lock rides on)."""

from __future__ import annotations

import os
import sys
import time

from gpumod.drivers.transports.local import LocalTransport

ECHO = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line.upper()); sys.stdout.flush()\nsys.exit(4)"


async def test_write_readline_then_eof_ends_it():
    proc = await LocalTransport(env={"GPUMOD_T": "x"}).open_process([sys.executable, "-c", ECHO])
    proc.write(b"hello\n")
    assert await proc.readline() == "HELLO\n"
    assert proc.returncode is None
    await proc.close()
    assert proc.returncode == 4
    assert await proc.readline() == ""


async def test_env_reaches_the_child():
    code = "import os;print(os.environ['A'], os.environ['B'])"
    proc = await LocalTransport(env={"A": "1"}).open_process([sys.executable, "-c", code], env={"B": "2 3"})
    assert await proc.readline() == "1 2 3\n"
    await proc.close()


async def test_close_kills_a_child_that_ignores_eof():
    proc = await LocalTransport().open_process(
        [sys.executable, "-c", "import time;print('up',flush=True);time.sleep(60)"]
    )
    assert await proc.readline() == "up\n"
    pid = proc.pid
    started = time.monotonic()
    await proc.close(grace_s=0.3)
    assert time.monotonic() - started < 3
    assert proc.returncode is not None and proc.returncode < 0
    assert not os.path.exists(f"/proc/{pid}")


async def test_missing_executable_is_an_exited_process():
    proc = await LocalTransport().open_process(["/nonexistent/bin/thing"])
    assert proc.returncode == 127
    assert await proc.readline() == ""
    assert b"/nonexistent/bin/thing" in await proc.read_stderr()
    await proc.close()
