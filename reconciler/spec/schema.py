"""The JSON Schema of a spec file, for editors (yaml-language-server) and `gpumod schema`.

Generated from the same pydantic models the loader validates with, so the editor and
`gpumod validate` never disagree about which keys exist. One document is a Pod, a Service or a
Mode, told apart by ``kind``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from gpumod.spec.models import ModeSpec, PodSpec, ServiceSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

SpecDocument = Annotated[Union[PodSpec, ServiceSpec, ModeSpec], Field(discriminator="kind")]


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) matching one spec document: oneOf Pod, Service, Mode by ``kind``."""
    schema = TypeAdapter(SpecDocument).json_schema()
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "gpumod spec document",
        "description": "One YAML document of a gpumod spec repository: kind Pod, Service or Mode, then its fields.",
        **schema,
    }
