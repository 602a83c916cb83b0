"""In which wave each step of a phase runs (planning rule 4).

A step's wave is 1 + the highest wave of the steps that must come before it, so independent
steps run together. In phase free a service's step waits for the steps of the services that
depend on it (dependents stop before their dependencies); in phase fill it waits for the steps of
its dependencies (a dependency without a step counts as satisfied). Starts that go to sleep right
after their health check are *serial*: each gets a wave of its own. They go as early as they can
(a ready one first; otherwise only the steps they wait for), so that their brief awake peak
meets as little newly started VRAM as possible (the plan prices that peak); the other steps
follow. Ties are broken by name: the result does not depend on input order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Set


def waves(
    steps: Iterable[str],
    before: Mapping[str, Iterable[str]],
    serial: Set[str] = frozenset(),
) -> dict[str, int]:
    """Wave number (from 1) per stepped service.

    ``before[x]`` names the services whose steps must precede x's (services without a step are
    ignored). ``serial`` steps each get a wave of their own, ahead of the other ready steps. A dependency cycle
    (rejected by the spec checks, so never expected here) is broken at its smallest name rather than looping.
    """
    nodes = sorted(set(steps))
    present = set(nodes)
    preds = {x: sorted(set(p for p in before.get(x, ()) if p in present and p != x)) for x in nodes}
    succ: dict[str, list[str]] = {x: [] for x in nodes}
    for x in nodes:
        for p in preds[x]:
            succ[p].append(x)
    indeg = {x: len(preds[x]) for x in nodes}
    ready: list[str] = [x for x in nodes if indeg[x] == 0 and x not in serial]
    ready_serial: list[str] = [x for x in nodes if indeg[x] == 0 and x in serial]
    heapq.heapify(ready_serial)
    out: dict[str, int] = {}
    wave = 0
    while len(out) < len(nodes):
        wave += 1
        if ready_serial:
            batch = [heapq.heappop(ready_serial)]
        elif ready:
            urgent = _ancestors([x for x in serial if x in present and x not in out], preds) if serial else set()
            batch = sorted(x for x in ready if x in urgent) or sorted(ready)
            ready = [x for x in ready if x not in batch]
        else:  # a cycle: break it deterministically
            batch = [min(x for x in nodes if x not in out)]
            indeg[batch[0]] = 0
        for x in batch:
            out[x] = wave
        for x in batch:
            for s in succ[x]:
                if s in out:
                    continue
                indeg[s] -= 1
                if indeg[s] == 0:
                    if s in serial:
                        heapq.heappush(ready_serial, s)
                    else:
                        ready.append(s)
    return out


def _ancestors(nodes: list[str], preds: Mapping[str, list[str]]) -> set[str]:
    """Every step that ``nodes`` wait for, directly or not."""
    seen: set[str] = set()
    todo = list(nodes)
    while todo:
        for p in preds[todo.pop()]:
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def reverse(depends_on: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Dependents per service, from each service's ``depends_on``."""
    out: dict[str, list[str]] = {}
    for name in sorted(depends_on):
        for dep in depends_on[name]:
            out.setdefault(dep, []).append(name)
    return out
