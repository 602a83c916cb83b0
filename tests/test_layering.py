"""The pure core and the spec language import nothing that touches the world (so plan() stays pure),
and the engine reaches concrete drivers/transports only through the wiring module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_PURE = {
    "asyncssh", "httpx", "watchfiles", "jinja2", "typer", "rich", "subprocess", "asyncio",
    "socket", "time", "os", "structlog", "urllib", "http",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _top(name: str) -> str:
    return name.split(".")[0]


def test_core_and_spec_are_pure() -> None:
    offenders = []
    for folder in ("reconciler/core", "reconciler/spec"):
        for path in sorted((ROOT / folder).glob("*.py")):
            for name in _imports(path):
                if _top(name) in FORBIDDEN_IN_PURE:
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
                if name.startswith("gpumod.") and name.split(".")[1] not in ("core", "spec", "errors"):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name} (outside the pure core)")
    assert offenders == []


def test_engine_reaches_concrete_transports_only_through_wiring() -> None:
    offenders = []
    for path in sorted((ROOT / "reconciler").glob("*.py")):
        if path.name in {"wiring.py"}:
            continue
        for name in _imports(path):
            if name.startswith(("gpumod.drivers.transports", "gpumod.sim")):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_drivers_do_not_import_the_engine() -> None:
    offenders = []
    for path in sorted((ROOT / "drivers").rglob("*.py")):
        for name in _imports(path):
            if name.startswith("gpumod.") and _top(name.split(".", 1)[1]) in {
                "cli", "ops", "execute", "wiring", "views",
            }:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []
