"""json_schema(): one spec document is a Pod, a Service or a Mode; the examples validate against it.

No JSON Schema library is a dependency, so a small validator for the keywords the schema uses
(checked below: a new keyword fails the test instead of being silently ignored) does the work.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from gpumod.spec import json_schema

from ._helpers import FIXTURES

SUPPORTED = {
    "$schema", "$defs", "$ref", "title", "description", "default", "discriminator",
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "anyOf", "oneOf", "pattern", "minimum", "maximum", "exclusiveMinimum",
}
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def errors(schema: dict, value: Any, root: dict) -> list[str]:
    if "$ref" in schema:
        return errors(root["$defs"][schema["$ref"].rsplit("/", 1)[1]], value, root)
    out: list[str] = []
    if "type" in schema and not TYPES[schema["type"]](value):
        return [f"{value!r} is not {schema['type']}"]
    if "const" in schema and value != schema["const"]:
        out.append(f"{value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{value!r} not in {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        out.append(f"{value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        out.append(f"{value!r} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        out.append(f"{value!r} > {schema['maximum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        out.append(f"{value!r} <= {schema['exclusiveMinimum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"missing {k}" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            if key in props:
                out += errors(props[key], item, root)
            elif schema.get("additionalProperties") is False:
                out.append(f"unknown key {key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(schema["additionalProperties"], item, root)
    if isinstance(value, list) and "items" in schema:
        for item in value:
            out += errors(schema["items"], item, root)
    if "anyOf" in schema and all(errors(s, value, root) for s in schema["anyOf"]):
        out.append(f"{value!r} matches no anyOf branch")
    if "oneOf" in schema and sum(not errors(s, value, root) for s in schema["oneOf"]) != 1:
        out.append(f"{value!r} does not match exactly one oneOf branch")
    return out


def keywords(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            children = value.values() if key in ("properties", "$defs") else [value]
            if key not in ("discriminator", "default", "enum", "const"):
                for child in children:
                    found |= keywords(child)
    elif isinstance(node, list):
        for item in node:
            found |= keywords(item)
    return found


SCHEMA = json_schema()


def test_schema_is_json_with_a_kind_discriminator() -> None:
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA
    assert SCHEMA["$schema"].startswith("https://json-schema.org/")
    assert SCHEMA["discriminator"]["propertyName"] == "kind"
    assert [b["$ref"] for b in SCHEMA["oneOf"]] == ["#/$defs/PodSpec", "#/$defs/ServiceSpec", "#/$defs/ModeSpec"]
    assert keywords(SCHEMA) <= SUPPORTED, keywords(SCHEMA) - SUPPORTED


def _documents() -> list[Any]:
    docs = []
    for path in sorted((FIXTURES / "valid").rglob("*.yaml")):
        if not any(part.startswith(".") for part in path.relative_to(FIXTURES).parts):
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    return docs


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}-{d['name']}")
def test_the_example_documents_validate(doc: dict) -> None:
    assert errors(SCHEMA, doc, SCHEMA) == []


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "Pod", "name": "p"},  # no mode
        {"kind": "Pod", "name": "p", "mode": "m", "reserve": 1},
        {"kind": "Service", "name": "s", "port": "80"},
        {"kind": "Service", "name": "Bad Name"},
        {"kind": "Mode", "name": "m", "services": [{"name": "x", "state": "asleep"}]},
        {"kind": "Moose", "name": "m"},
    ],
)
def test_mistakes_do_not_validate(doc: dict) -> None:
    assert errors(SCHEMA, doc, SCHEMA) != []
