"""The dev cluster's own exception types.

Everything that can go wrong while building, starting or stopping the cluster is raised as
a :class:`DevClusterError` whose message is one line the user can act on; the command
layer prints it and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

from pathlib import Path


class DevClusterError(Exception):
    """Base class: a problem with the local dev cluster, described in one line."""


class InputError(DevClusterError):
    """A flag, an environment setting or a file given to the command cannot be used; the
    command exits with status 2, as for any bad input."""


class ScenarioError(InputError):
    """A scenario file is missing, unreadable or has an invalid field."""


class PortInUseError(DevClusterError):
    """A loopback port the cluster needs is already taken by another process."""


class MissingToolError(DevClusterError):
    """A required program (Go, openssl, the Debian ``prometheus`` package) is absent."""


class BuildError(DevClusterError):
    """Building a component failed; ``log_path`` holds the full output."""

    def __init__(self, component: str, log_path: Path) -> None:
        super().__init__(f"building {component} failed; see the log at {log_path}")
        self.component = component
        self.log_path = log_path


class StartupError(DevClusterError):
    """A component exited or did not become ready in time."""


class AlreadyRunningError(DevClusterError):
    """``up`` was asked for while a cluster from the same state directory is running."""


class NotRunningError(DevClusterError):
    """``down`` or ``status`` found no running cluster."""


class ClusterApiError(DevClusterError):
    """A call to the API server or Prometheus failed."""
