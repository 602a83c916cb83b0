"""The closed sets of words a spec uses (drivers, sleep kinds, mode member states, drift policies).

Why a module of its own: ``ResolvedService`` and the pure core name these types, and a no-op
``gpumod plan`` whose specs come from the cache (``gpumod.spec_cache``) should not import the
pydantic models of ``gpumod.spec.models`` just for four ``Literal`` aliases.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DriftPolicy", "DriverName", "MemberState", "SleepKind"]

DriverName = Literal["vllm", "llamacpp", "fastapi", "command", "docker"]
SleepKind = Literal["none", "l1", "l2", "router"]
MemberState = Literal["active", "sleeping", "standby"]
DriftPolicy = Literal["correct", "warn", "ignore"]
