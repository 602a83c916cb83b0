"""asyncssh is imported without its shared-library search for liboqs (P1/P7 start-up)."""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

import pytest

from gpumod.drivers.transports import ssh


@pytest.mark.skipif(not Path("/etc/ld.so.cache").exists(), reason="no dynamic linker cache")
def test_names_in_the_linker_cache_still_go_to_find_library():
    assert ssh._linkable("c")  # libc.so.6 is in every linker cache
    assert not ssh._linkable("gpumod-no-such-library")


def test_a_library_on_ld_library_path_counts(tmp_path, monkeypatch):
    (tmp_path / "libgpumodfake.so.1").write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", f"/nonexistent{os.pathsep}{tmp_path}")
    assert ssh._linkable("gpumodfake")


def test_find_library_is_restored_after_the_import():
    assert ctypes.util.find_library.__module__ == "ctypes.util"
    assert ssh.asyncssh.connect  # the real module
