"""What every GPU of a pod holds in the planned end state, and where new services go (rules 5, 6).

A GPU's end-state need (rule 5) = the steady MiB of its services (awake footprints, residuals of
sleepers) + VRAM of processes gpumod does not manage + the pod's reserve + the standby term: the
largest ``max_awake`` standby wake-ups on the GPU (or the wake-ups of the standby members that
really stay awake, if more are awake than budgeted). The brief peak of a start-then-sleep is
priced on top of this by ``gpumod.core.plan`` (it depends on the order of the fill phase).

Pinned services and services that already run are fixed; the rest are packed first-fit-decreasing
(a ``gpus: N`` service takes the N GPUs with most room). Everything is incremental: trying a
service on a GPU costs O(max_awake), so planning stays linear in the number of services.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gpumod.core.model import GpuBudget, GpuInfo

ABSENT_GPU = "not present"


@dataclass(frozen=True)
class Load:
    """What one service takes on one GPU in the end state."""

    service: str
    mb: int  # steady MiB: the awake footprint, or the residual when asleep / standby
    standby: bool = False
    wake_mb: int = 0  # standby members: what a wake-up adds
    awake: bool = False  # standby member that is awake in the end state
    stuck: bool = False  # ...and that the plan cannot put to sleep (starting / unhealthy)
    transient_mb: int = 0  # extra MiB while it starts awake before its first sleep (placement hint)
    asleep: bool = False  # a non-standby member counted at its residual
    measured: bool = False  # the awake figure is the measured one (larger than declared)

    @property
    def label(self) -> str:
        tags = [t for t, on in (("measured", self.measured), ("standby", self.standby), ("asleep", self.asleep)) if on]
        return f"{self.service} ({', '.join(tags)})" if tags else self.service


def headroom(loads: Iterable[Load], max_awake: int) -> tuple[int, str]:
    """The standby term of one GPU and what it is for (see the module docstring)."""
    loads = list(loads)
    deltas = sorted((x.wake_mb for x in loads if x.standby), reverse=True)
    awake = sum(x.wake_mb for x in loads if x.standby and x.awake)
    return _headroom(sum(deltas[: max(0, max_awake)]), awake, max_awake)


def _headroom(room: int, awake: int, max_awake: int) -> tuple[int, str]:
    if max(room, awake) <= 0:
        return 0, ""
    if room >= awake:
        return room, f"standby wake-ups (max_awake {max_awake})"
    return awake, "standby members awake"


class GpuLoad:
    """The loads placed on one GPU so far, with the sums needed to price one more."""

    def __init__(self, info: GpuInfo, *, foreign_mb: int, reserve_mb: int, max_awake: int) -> None:
        self.info = info
        self.foreign_mb = foreign_mb
        self.reserve_mb = reserve_mb
        self.max_awake = max(0, max_awake)
        self.loads: dict[str, Load] = {}
        self._recount()

    @property
    def capacity(self) -> int:
        return self.info.total_mb

    def _recount(self) -> None:
        values = self.loads.values()
        self.base = sum(x.mb for x in values)
        self._deltas = sorted(-x.wake_mb for x in values if x.standby)  # ascending negatives = descending
        self.awake = sum(x.wake_mb for x in values if x.standby and x.awake)

    def add(self, load: Load) -> None:
        if load.service in self.loads:
            self.replace(load)
            return
        self.loads[load.service] = load
        self.base += load.mb
        if load.standby:
            bisect.insort(self._deltas, -load.wake_mb)
            self.awake += load.wake_mb if load.awake else 0

    def replace(self, load: Load) -> None:
        self.loads[load.service] = load
        self._recount()

    def need(self, extra: Load | None = None) -> int:
        """MiB this GPU needs in the end state (with ``extra`` added, if given)."""
        base, awake = self.base, self.awake
        top = [-d for d in self._deltas[: self.max_awake]]
        if extra is not None:
            base += extra.mb
            if extra.standby:
                top = sorted(top + [extra.wake_mb], reverse=True)[: self.max_awake]
                awake += extra.wake_mb if extra.awake else 0
        room, _ = _headroom(sum(top), awake, self.max_awake)
        return self.foreign_mb + self.reserve_mb + base + room

    def room(self, extra: Load | None = None) -> int:
        return self.capacity - self.need(extra)

    def budget(self, peak: tuple[int, str] = (0, "")) -> GpuBudget:
        """The end state as a GpuBudget; ``peak`` = (MiB, who) of a higher moment in the fill phase."""
        users = sorted(((x.label, x.mb) for x in self.loads.values() if x.mb > 0), key=lambda u: (-u[1], u[0]))
        extra, what = headroom(self.loads.values(), self.max_awake)
        if extra > 0:
            users.append((what, extra))
        if self.foreign_mb > 0:
            users.append(("other processes (not managed by gpumod)", self.foreign_mb))
        if self.reserve_mb > 0:
            users.append(("reserve", self.reserve_mb))
        need = self.need()
        if peak[0] > need:
            users.append((f"while {peak[1]} starts awake before it sleeps", peak[0] - need))
            need = peak[0]
        return GpuBudget(self.info.index, self.info.name, self.capacity, need, tuple(users))


@dataclass(frozen=True)
class Claim:
    """A service asking for GPUs: fixed ones (pinned, or where it runs) or any ``count`` of them."""

    service: str
    count: int
    load: Load
    size: int  # awake footprint: first-fit-decreasing sorts by it
    gpus: tuple[int, ...] | None = None
    per_gpu: Mapping[int, Load] = field(default_factory=dict)  # loads that differ by GPU (measured)

    def load_on(self, gpu: int) -> Load:
        return self.per_gpu.get(gpu, self.load)


class Placement:
    """The GPUs of one pod and the services placed on them."""

    def __init__(self, gpus: Sequence[GpuInfo], foreign: Mapping[int, int], reserve_mb: int, max_awake: int) -> None:
        self.max_awake = max_awake
        self.gpus: dict[int, GpuLoad] = {
            g.index: GpuLoad(g, foreign_mb=foreign.get(g.index, 0), reserve_mb=reserve_mb, max_awake=max_awake)
            for g in sorted(gpus, key=lambda g: g.index)
        }
        self.real = tuple(self.gpus)
        self.of: dict[str, tuple[int, ...]] = {}

    def _gpu(self, index: int) -> GpuLoad:
        if index not in self.gpus:
            info = GpuInfo(index=index, name=ABSENT_GPU, total_mb=0)
            self.gpus[index] = GpuLoad(info, foreign_mb=0, reserve_mb=0, max_awake=self.max_awake)
        return self.gpus[index]

    def put(self, claim: Claim, gpus: tuple[int, ...]) -> None:
        self.of[claim.service] = gpus
        for g in gpus:
            self._gpu(g).add(claim.load_on(g))

    def place_all(self, claims: Iterable[Claim]) -> None:
        """Fixed claims first (by name), then the rest first-fit-decreasing (ties by name)."""
        claims = sorted(claims, key=lambda c: c.service)
        for claim in claims:
            if claim.gpus is not None:
                self.put(claim, claim.gpus)
        for claim in sorted((c for c in claims if c.gpus is None), key=lambda c: (-c.size, c.service)):
            self.put(claim, self.choose(claim))

    def choose(self, claim: Claim) -> tuple[int, ...]:
        if claim.count <= 0:
            return ()
        load = claim.load
        if not self.real:
            empty = load.mb == 0 and load.wake_mb == 0 and load.transient_mb == 0
            return () if empty else tuple(range(claim.count))
        if claim.count == 1:
            # first fit; a start-then-sleep prefers a GPU with room for its brief awake peak
            for slack in (load.transient_mb, 0):
                for index in self.real:
                    if self.gpus[index].room(load) >= slack:
                        return (index,)
            best = max(self.real, key=lambda i: (self.gpus[i].room(load), -i))
            return (best,)
        ranked = sorted(self.real, key=lambda i: (-self.gpus[i].room(), i))[: claim.count]
        missing = claim.count - len(ranked)
        ranked += [max(self.gpus) + 1 + k for k in range(missing)]  # absent GPUs: reported as shortfalls
        return tuple(sorted(ranked))

    def shown(self) -> list[int]:
        """The GPUs a budget is shown for: the pod's, and absent ones something was placed on."""
        return [i for i in sorted(self.gpus) if i in self.real or self.gpus[i].loads]

    def over(self) -> list[int]:
        return [i for i in self.shown() if self.gpus[i].need() > self.gpus[i].capacity]
