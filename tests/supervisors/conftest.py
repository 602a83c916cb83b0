"""Fixtures for the systemd supervisor tests: one real ``systemd --user`` per module (recipe 3A)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sdu import SduUnavailable, UserSystemd, start_user_systemd


@pytest.fixture(scope="module")
def sdu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserSystemd]:
    try:
        manager = start_user_systemd(tmp_path_factory.mktemp("sdu"))
    except SduUnavailable as err:
        pytest.skip(f"real systemd --user (recipe 3A) unavailable: {err}")
    try:
        yield manager
    finally:
        manager.stop()
