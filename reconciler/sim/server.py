"""Entry point of the sim inference server: ``python -m gpumod.sim.server --flavour F -- ARGV``.

On a sim pod gpumod launches its services with the REAL command lines (``vllm serve ...``,
``llama-server -m ...``, a FastAPI app's argv), only swapping the binary for this module, so the
drivers under test are the real ones. ``ARGV`` is the real server's argv after the binary; the
flavour decides how it behaves (see ``vllm_flavour``, ``llamacpp_flavour``, ``plain_flavour``).
Standard library only: it must import and bind in well under 150 ms.

Environment: ``GPUMOD_SIM_DIR``, ``CUDA_VISIBLE_DEVICES``, ``GPUMOD_SIM_VRAM_MB``,
``GPUMOD_SIM_SLEEP_MB``, ``GPUMOD_SIM_LOAD_S``/``_SLEEP_S``/``_WAKE_S``, ``GPUMOD_SIM_FAIL``
(``start``; ``load`` for router model loads), ``VLLM_SERVER_DEV_MODE``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from gpumod.sim.runtime import Settings, SimServer, run_forever_exit

__all__ = ["FLAVOURS", "build", "main"]

FLAVOURS = ("vllm", "llamacpp", "plain")
USAGE = "usage: python -m gpumod.sim.server --flavour vllm|llamacpp|plain -- <real server argv>"


def split_argv(argv: Sequence[str]) -> tuple[str, list[str]]:
    """(flavour, the real server argv) from ``--flavour F [--] ARGV...``."""
    args = list(argv)
    flavour = None
    while args and args[0] != "--":
        head = args.pop(0)
        if head == "--flavour" and args:
            flavour = args.pop(0)
        elif head.startswith("--flavour="):
            flavour = head.partition("=")[2]
        else:
            args.insert(0, head)
            break
    if args and args[0] == "--":
        args.pop(0)
    if flavour not in FLAVOURS:
        raise ValueError(USAGE)
    return flavour, args


def build(flavour: str, argv: Sequence[str], settings: Settings) -> SimServer:
    if flavour == "vllm":
        from gpumod.sim.vllm_flavour import VllmServer

        return VllmServer(argv, settings)
    if flavour == "llamacpp":
        from gpumod.sim.llamacpp_flavour import make_llamacpp

        return make_llamacpp(argv, settings)
    from gpumod.sim.plain_flavour import PlainServer

    return PlainServer(argv, settings)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        flavour, real = split_argv(sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        sys.stderr.write(f"{e}\n")
        sys.exit(2)
    run_forever_exit(build(flavour, real, Settings.from_env(os.environ)))


if __name__ == "__main__":
    main()
