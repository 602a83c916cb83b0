"""Real infrastructure for tests: a private sshd on loopback (``sshd.py``), network-namespace pods
and systemd pods. Start/stop helpers are usable without pytest; the pytest fixtures live in
``fixtures.py`` and ``pod_fixtures.py`` (registered by ``tests/conftest.py``)."""
