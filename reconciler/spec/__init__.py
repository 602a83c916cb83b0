"""The spec language: YAML documents (Pod, Service, Mode), presets, validation with file:line.

    load_specs(path)        -> SpecSet, or SpecError with every problem
    PresetCatalog.load()    the presets shipped in gpumod.presets
    resolve_service(...)    a Service with its preset merged in -> ResolvedService
    parse_host(host)        a pod's host string -> HostSpec
    json_schema()           the JSON Schema of a spec document

Each name is imported from its module when first used (PEP 562): a module that needs one piece
(the pure core needs ``gpumod.spec.kinds``) does not pay for the loader's checks and YAML parser,
nor the schema (start-up time of `gpumod plan`, benchmarks/plan_startup.py).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpumod.spec.checks import check_specs
    from gpumod.spec.hosts import HostSpec, parse_host
    from gpumod.spec.loader import SpecSet, load_specs
    from gpumod.spec.presets import PresetCatalog, resolve_service
    from gpumod.spec.schema import json_schema

__all__ = [
    "HostSpec",
    "PresetCatalog",
    "SpecSet",
    "check_specs",
    "json_schema",
    "load_specs",
    "parse_host",
    "resolve_service",
]

_HOME = {
    "HostSpec": "hosts",
    "PresetCatalog": "presets",
    "SpecSet": "loader",
    "check_specs": "checks",
    "json_schema": "schema",
    "load_specs": "loader",
    "parse_host": "hosts",
    "resolve_service": "presets",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain one
    return value
