"""Server flags as an ordered map, so a spec's ``args`` override instead of piling up.

pi-pods filtered a flat string list by substring and left the old value behind as a stray
positional argument (``--max-model-len 8192 32000``). Here every flag has one canonical key
(dashes stripped, ``_`` → ``-``, short aliases resolved); setting a key again replaces its value
where it stands. Values: ``True`` → bare flag, ``False``/``None`` → omitted (removing a default),
a list → the flag repeated, anything else → ``--flag value``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

FlagValue = Any


class Flags:
    """An ordered flag map for one command line."""

    def __init__(self, aliases: Mapping[str, str] | None = None, short: Iterable[str] = ()) -> None:
        self.aliases = dict(aliases or {})
        self.short = set(short)
        self._items: dict[str, tuple[str, FlagValue]] = {}

    def canonical(self, key: str) -> str:
        bare = key.lstrip("-").replace("_", "-")
        return self.aliases.get(bare, bare)

    def spelling(self, key: str) -> str:
        if key.startswith("-"):
            return key
        bare = key.replace("_", "-")
        return f"-{bare}" if bare in self.short or len(bare) == 1 else f"--{bare}"

    def set(self, key: str, value: FlagValue) -> None:
        """Set a flag; an existing one keeps its place and spelling, only its value changes."""
        canon = self.canonical(key)
        if canon in self._items:
            self._items[canon] = (self._items[canon][0], value)
        else:
            self._items[canon] = (self.spelling(key), value)

    def update(self, items: Iterable[tuple[str, FlagValue]]) -> None:
        for key, value in items:
            self.set(key, value)

    def render(self) -> list[str]:
        argv: list[str] = []
        for flag, value in self._items.values():
            if value is None or value is False:
                continue
            if value is True:
                argv.append(flag)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    argv += [flag, str(item)]
            else:
                argv += [flag, str(value)]
        return argv


def gpu_env(
    gpus: tuple[int, ...], base: Iterable[tuple[str, str]], svc_env: Iterable[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """CUDA_VISIBLE_DEVICES = exactly the chosen GPUs (never overridable), then defaults, then the spec's env."""
    env: dict[str, str] = {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpus)}
    for key, value in list(base) + list(svc_env):
        if key != "CUDA_VISIBLE_DEVICES":
            env[key] = str(value)
    return tuple(env.items())
