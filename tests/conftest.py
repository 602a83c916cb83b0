"""Fixtures shared by every test directory: real infrastructure (sshd, ...) from tests/infra/."""

pytest_plugins = ["infra.fixtures", "infra.pod_fixtures"]
