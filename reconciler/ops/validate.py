"""``validate``: load and check the specs, and resolve every service against the presets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpumod.core.desired import build_desired
from gpumod.errors import SpecError
from gpumod.spec import PresetCatalog, load_specs

__all__ = ["ValidateResult", "validate"]


@dataclass(frozen=True)
class ValidateResult:
    valid: bool
    pods: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    error: SpecError | None = None  # every problem, with file:line, when not valid

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"valid": False, "problems": self.error.to_json()["problems"]}
        return {"valid": True, "pods": list(self.pods), "services": list(self.services), "modes": list(self.modes)}


def validate(spec_dir: str | Path) -> ValidateResult:
    """Never raises for invalid specs: the problems are in the result."""
    try:
        specs = load_specs(spec_dir)
        catalog = PresetCatalog.load()
        pods = [p for p in specs.pods if p.gpus]
        build_desired(specs, catalog, {}, pods=[p.name for p in pods])
    except SpecError as err:
        return ValidateResult(False, error=SpecError(list(err.problems), hint=err.hint))
    pod_names = tuple(p.name for p in specs.pods)
    return ValidateResult(
        True, pod_names, tuple(s.name for s in specs.services), tuple(m.name for m in specs.modes)
    )
