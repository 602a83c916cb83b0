"""FakeTransport: records every call and answers from a script (unit tests of seams only).

Results are consumed in order; a result may be a ``CommandResult`` or a callable
``(argv, stdin) -> CommandResult`` (e.g. to answer from the agent payload). Running out of
scripted results is a test bug and raises ``AssertionError``.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, Union

from gpumod.ports import CommandResult

Responder = Callable[[Sequence[str], Union[bytes, None]], CommandResult]
Scripted = Union[CommandResult, Responder]


@dataclass(frozen=True)
class FakeCall:
    argv: tuple[str, ...]
    stdin: bytes | None
    timeout: float | None


class FakeTransport:
    def __init__(self, results: Iterable[Scripted] = ()) -> None:
        self.calls: list[FakeCall] = []
        self._results: deque[Scripted] = deque(results)
        self.closed = False

    def push(self, result: Scripted) -> "FakeTransport":
        self._results.append(result)
        return self

    def push_json(self, document: Any, returncode: int = 0, stderr: bytes = b"") -> "FakeTransport":
        return self.push(CommandResult(returncode, json.dumps(document).encode(), stderr))

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        self.calls.append(FakeCall(tuple(argv), stdin, timeout))
        if not self._results:
            raise AssertionError(f"FakeTransport: no scripted result left for {list(argv)[:3]}")
        result = self._results.popleft()
        return result if isinstance(result, CommandResult) else result(argv, stdin)

    async def close(self) -> None:
        self.closed = True
