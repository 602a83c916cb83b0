"""Every folder that is a Python package is listed in pyproject's setuptools packages
(a forgotten one would be missing from a wheel), and the shipped data is reachable."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    dirs = config["package-dir"]
    found = set()
    for package, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - found == set(), "listed packages without an __init__.py"


def test_presets_ship_as_package_data() -> None:
    def walk(node):  # Traversable has no rglob: works for wheels and editable installs alike
        for child in node.iterdir():
            if child.is_dir():
                yield from walk(child)
            elif child.name.endswith(".yaml"):
                yield child

    assert len(list(walk(resources.files("gpumod.presets")))) >= 10
