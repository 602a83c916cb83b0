"""YAML 1.1 reads an unquoted yes/no/on/off as a boolean: a mode named `off` would be the boolean
False. The problem says so, at its line, and how to write it; quoted, the name works."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumod.errors import SpecError
from gpumod.spec import load_specs

POD = "kind: Pod\nname: box\nhost: sim\nmode: {mode}\ngpus: [{{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}}]\n"
MODE = "---\nkind: Mode\nname: {name}\nservices: []\n"


def _repo(tmp_path: Path, mode: str, name: str) -> Path:
    (tmp_path / "all.yaml").write_text(POD.format(mode=mode) + MODE.format(name=name))
    return tmp_path


@pytest.mark.parametrize("word, value", [("off", "False"), ("no", "False"), ("yes", "True"), ("on", "True")])
def test_an_unquoted_yaml_boolean_name_says_to_quote_it(tmp_path: Path, word: str, value: str) -> None:
    with pytest.raises(SpecError) as err:
        load_specs(_repo(tmp_path, word, word))
    lines = [str(p) for p in err.value.problems]
    assert any(line.startswith(f"{tmp_path / 'all.yaml'}:4: mode: YAML reads an unquoted") for line in lines), lines
    assert all(f"as the boolean {value}, not a word; put it in quotes" in line for line in lines), lines
    assert len(lines) == 2  # the pod's mode line and the mode's name line


def test_quoted_the_word_is_a_name(tmp_path: Path) -> None:
    specs = load_specs(_repo(tmp_path, "'off'", '"off"'))
    assert specs.pods[0].mode == "off" and specs.mode("off") is not None
