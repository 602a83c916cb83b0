"""gpumod.spec's public names: what the rest of gpumod (and users' scripts) may import."""

from __future__ import annotations

import gpumod.spec


def test_public_names() -> None:
    assert sorted(gpumod.spec.__all__) == [
        "HostSpec", "PresetCatalog", "SpecSet", "check_specs", "json_schema", "load_specs", "parse_host",
        "resolve_service",
    ]
    for name in gpumod.spec.__all__:
        assert getattr(gpumod.spec, name) is not None


def test_the_catalog_is_read_once() -> None:
    assert gpumod.spec.PresetCatalog.load() is gpumod.spec.PresetCatalog.load()
