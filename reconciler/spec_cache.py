"""A cache of valid spec repositories: a `gpumod plan` that reads the same specs as last time
does not parse, validate and cross-check them again.

Why: building pydantic's validators for the spec models costs more than everything else a no-op
`gpumod plan` does after its imports (issue 7, P7; ``benchmarks/plan_startup.py``); the models
are built with ``defer_build``, so a hit never builds them.

What a hit must not change: every problem is still found and reported afresh, because only a
repository that loaded without a single problem is stored (``load_specs`` raises before). The key
is a SHA-256 of everything the result depends on: every spec file's path and bytes, every
packaged preset file's bytes, the source files of ``gpumod.spec`` (size and mtime: an edited
check or model is a miss), gpumod's, pydantic's and Python's versions, the working directory
(problems and sources name paths relative to it) and the path as given. One entry per spec path
and working directory, overwritten on a miss, so the cache does not grow with every edit.

The entry is a pickle, and loading a pickle runs code: it is used only in a folder of this user's
with mode 0700 (created so; anything else is never read or written), written 0600 through a
temporary file and ``os.replace``. Anything unreadable, stale or failing to load is a miss.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
from pathlib import Path
from typing import Any

import gpumod
from gpumod.errors import Problem
from gpumod.spec import PresetCatalog, SpecSet, load_specs
from gpumod.spec.loader import spec_files

__all__ = ["load_specs_cached"]

_FORMAT = b"gpumod-spec-cache-1\n"


def load_specs_cached(path: str | Path, cache_dir: Path) -> SpecSet:
    """``load_specs(path)`` with the packaged presets, from ``cache_dir`` when nothing changed."""
    root = Path(path)
    catalog = PresetCatalog.load()
    folder = _private_dir(cache_dir)
    try:
        cwd = os.getcwd()
    except OSError:  # a working directory that was removed: problems name absolute paths, no cache
        folder = None
    if folder is None:
        return load_specs(root, catalog)
    key = _key(root, catalog, cwd)
    entry = folder / (hashlib.sha256(f"{cwd}\0{root}".encode()).hexdigest()[:32] + ".pickle")
    if key is not None:
        found = _read(entry, key)
        if found is not None:
            specs, presets = found
            _prime(catalog, presets)
            return specs
    specs = load_specs(root, catalog)  # raises on any problem: nothing invalid is stored
    if key is not None:
        _write(entry, key, (specs, dict(getattr(catalog, "_one", {}))))
    return specs


def _private_dir(cache_dir: Path) -> Path | None:
    """``cache_dir``, created 0700; None (no cache) unless it is a real folder of ours that only we can use."""
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(cache_dir)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return cache_dir


def _key(root: Path, catalog: PresetCatalog, cwd: str) -> bytes | None:
    """The digest of everything a loaded SpecSet depends on; None when a file cannot be read (no cache)."""
    import pydantic.version

    h = hashlib.sha256(_FORMAT)
    for part in (gpumod.__version__, pydantic.version.VERSION, sys.version, cwd, str(root)):
        h.update(part.encode() + b"\0")
    try:
        spec_pkg = Path(gpumod.spec.__file__).parent
        for entry in sorted(os.scandir(spec_pkg), key=lambda e: e.name):
            if entry.name.endswith(".py"):
                st = entry.stat()
                h.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        problems: list[Problem] = []
        files = spec_files(root, problems)
        if problems:
            return None
        for file in files:
            data = file.read_bytes()
            h.update(f"{file}\0{len(data)}\0".encode() + data)
        for name, preset in getattr(catalog, "_files", ()):
            data = preset.read_bytes()
            h.update(f"{name}\0{len(data)}\0".encode() + data)
    except OSError:
        return None
    return h.digest()


def _read(entry: Path, key: bytes) -> tuple[SpecSet, dict[str, PresetCatalog]] | None:
    try:
        with open(entry, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                return None
            head = f.read(len(_FORMAT) + len(key))
            if head != _FORMAT + key:
                return None
            specs, presets = pickle.load(f)
    except Exception:  # a missing, torn or foreign entry is a miss, never an error
        return None
    if not isinstance(specs, SpecSet) or not isinstance(presets, dict):
        return None
    return specs, presets


def _write(entry: Path, key: bytes, value: Any) -> None:
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_FORMAT + key)
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, entry)
    except Exception:  # a cache that cannot be written only costs time next run
        try:
            tmp.unlink()
        except OSError:
            pass


def _prime(catalog: PresetCatalog, presets: dict[str, PresetCatalog]) -> None:
    """Give the packaged catalog the presets the stored load read, so resolving them reads no YAML."""
    one = getattr(catalog, "_one", None)
    if isinstance(one, dict):
        for name, found in presets.items():
            one.setdefault(name, found)
