"""Checks that the loopback ports the cluster needs are free, before anything starts."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from hybrid_lab.devcluster.errors import PortInUseError
from hybrid_lab.devcluster.settings import LOOPBACK


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a TCP server could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def require_free(ports: Mapping[str, int], host: str = LOOPBACK) -> None:
    """Raise :class:`PortInUseError` naming the first busy port and what needed it."""
    for purpose, port in ports.items():
        if not port_is_free(port, host):
            raise PortInUseError(
                f"port {host}:{port} (needed for {purpose}) is already in use; "
                "stop what holds it or choose another port"
            )


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel reports free now (for an extra process of a benchmark or test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port
