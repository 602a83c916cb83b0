"""Helpers shared by the spec tests."""

from __future__ import annotations

from pathlib import Path

from gpumod.errors import SpecError
from gpumod.spec import PresetCatalog, SpecSet, load_specs

FIXTURES = Path(__file__).parent / "fixtures"
# A simulated RTX 4090 pod running mode `m`: the pod document most spec tests start from.
SIM_POD = """
kind: Pod
name: box
host: sim
mode: m
gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]
"""


def problems_of(path: Path | str, catalog: PresetCatalog | None = None) -> list[str]:
    """Every ``path:line: message`` load_specs reports (empty when the specs are valid)."""
    try:
        load_specs(path, catalog)
    except SpecError as err:
        return [str(p) for p in err.problems]
    return []


def loaded(path: Path | str, catalog: PresetCatalog | None = None) -> SpecSet:
    try:
        return load_specs(path, catalog)
    except SpecError as err:  # show every problem, not just "n problems"
        raise AssertionError("\n".join(map(str, err.problems))) from None
