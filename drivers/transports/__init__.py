"""Transports: how a command reaches a pod (``gpumod.ports.Transport``).

``local`` runs it as a subprocess of this machine; ``fake`` records calls and returns scripted
results for unit tests of the seams. The SSH transport joins them later.
"""

from gpumod.drivers.transports.fake import FakeCall, FakeTransport
from gpumod.drivers.transports.local import TIMEOUT_RETURNCODE, LocalTransport

__all__ = ["FakeCall", "FakeTransport", "LocalTransport", "TIMEOUT_RETURNCODE"]
