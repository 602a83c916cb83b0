"""A local port forwarded to a port on an SSH pod, over the pod's own gpumod SSH connection.

Why here and small: ``gpumod prompt`` needs to reach a service that binds 127.0.0.1 on the pod
for as long as one chat runs. The connection comes from ``gpumod.wiring`` (same host key,
identity and jump-host handling as every command); the forward is asyncssh's
``forward_local_port`` on an ephemeral 127.0.0.1 port. ``gpumod tunnel`` is the long-lived
version of this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gpumod.spec.models import PodSpec
from gpumod.wiring import open_pod

__all__ = ["forward_port"]


@asynccontextmanager
async def forward_port(pod: PodSpec, remote_port: int) -> AsyncIterator[int]:
    """Yield a local port that reaches ``127.0.0.1:remote_port`` on ``pod``."""
    handle = open_pod(pod)
    transport = handle.transport
    try:
        conn = await transport._connection()  # type: ignore[attr-defined]  # the pod's live connection
        listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", remote_port)
        try:
            yield listener.get_port()
        finally:
            listener.close()
    finally:
        await transport.close()
