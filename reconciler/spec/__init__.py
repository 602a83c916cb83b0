"""The spec language: YAML documents (Pod, Service, Mode), presets, validation with file:line.

    load_specs(path)        -> SpecSet, or SpecError with every problem
    PresetCatalog.load()    the presets shipped in gpumod.presets
    resolve_service(...)    a Service with its preset merged in -> ResolvedService
    parse_host(host)        a pod's host string -> HostSpec
    json_schema()           the JSON Schema of a spec document
"""

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
