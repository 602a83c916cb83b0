"""The cache of valid spec repositories (gpumod.spec_cache): a hit gives the same SpecSet without
loading; any change of a spec file is a miss; invalid specs are never stored, so their problems are
reported afresh every time; a cache folder others can use is never read or written."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import gpumod.spec_cache as spec_cache
from gpumod.errors import SpecError
from gpumod.spec import load_specs

VALID = Path(__file__).parent / "spec" / "fixtures" / "valid"


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    shutil.copytree(VALID, tmp_path / "specs")
    return tmp_path / "specs"


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every real (uncached) load, recorded."""
    calls: list[Path] = []

    def counting(path, catalog=None):  # type: ignore[no-untyped-def]
        calls.append(Path(path))
        return load_specs(path, catalog)

    monkeypatch.setattr(spec_cache, "load_specs", counting)
    return calls


def test_a_hit_gives_the_same_specs_without_loading(specs: Path, tmp_path: Path, loads: list[Path]) -> None:
    cache = tmp_path / "cache"
    first = spec_cache.load_specs_cached(specs, cache)
    second = spec_cache.load_specs_cached(specs, cache)
    assert len(loads) == 1
    assert second == first == load_specs(specs)
    where = [second.source("Service", s.name, "port") for s in second.services]  # path:line survive
    assert where == [first.source("Service", s.name, "port") for s in first.services]
    assert all(not w.endswith(":0") for w in where)
    assert os.stat(cache).st_mode & 0o777 == 0o700
    assert [oct(p.stat().st_mode & 0o777) for p in cache.iterdir()] == ["0o600"]


def test_an_edited_spec_file_is_a_miss(specs: Path, tmp_path: Path, loads: list[Path]) -> None:
    cache = tmp_path / "cache"
    spec_cache.load_specs_cached(specs, cache)
    pod_file = next(f for f in sorted(specs.rglob("*.yaml")) if "kind: Pod" in f.read_text())
    pod_file.write_text(pod_file.read_text() + "\n# a comment changes the bytes\n")
    spec_cache.load_specs_cached(specs, cache)
    assert len(loads) == 2
    assert len(list(cache.iterdir())) == 1  # one entry per spec path, overwritten


def test_invalid_specs_are_never_stored(specs: Path, tmp_path: Path, loads: list[Path]) -> None:
    cache = tmp_path / "cache"
    (specs / "broken.yaml").write_text("kind: Mode\nname: Bad_Name\n")
    for _ in range(2):
        with pytest.raises(SpecError) as err:
            spec_cache.load_specs_cached(specs, cache)
        assert any("broken.yaml:2" in str(p) for p in err.value.problems)
    assert len(loads) == 2
    assert list(cache.iterdir()) == []


def test_a_cache_folder_others_can_write_is_not_used(specs: Path, tmp_path: Path, loads: list[Path]) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o777)
    os.chmod(cache, 0o777)
    spec_cache.load_specs_cached(specs, cache)
    spec_cache.load_specs_cached(specs, cache)
    assert len(loads) == 2
    assert list(cache.iterdir()) == []


def test_a_foreign_or_torn_entry_is_a_miss(specs: Path, tmp_path: Path, loads: list[Path]) -> None:
    cache = tmp_path / "cache"
    first = spec_cache.load_specs_cached(specs, cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(entry.read_bytes()[:-20])  # torn
    assert spec_cache.load_specs_cached(specs, cache) == first
    os.chmod(entry, 0o644)  # readable by others: not trusted
    assert spec_cache.load_specs_cached(specs, cache) == first
    assert len(loads) == 3


def test_a_removed_working_directory_loads_without_the_cache(
    specs: Path, tmp_path: Path, loads: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert spec_cache.load_specs_cached(specs, tmp_path / "cache") == load_specs(specs)
    assert len(loads) == 1
