"""The API client of a command that talks to a cluster, or one line saying why not.

``--kubeconfig FILE`` wins; without it the client reads ``$KUBECONFIG`` or
``~/.kube/config``, and inside a pod the service account. A file that cannot be loaded,
or no configuration at all, is the user's to fix: :class:`UsageError` (exit 2).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from hybrid_operator.commands.arguments import UsageError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def api_client(kubeconfig: str | None) -> ApiClient:
    """The client for ``kubeconfig`` (None: the default places), or :class:`UsageError`."""
    from kubernetes.config import ConfigException

    from hybrid_operator.k8s.api import load_client

    try:
        return load_client(kubeconfig)
    except (ConfigException, OSError) as exc:
        detail = " ".join(str(exc).split())
        if kubeconfig:
            raise UsageError(f"--kubeconfig {kubeconfig}: cannot load it: {detail}") from None
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise UsageError(
            f"no usable kubeconfig ({where}: {detail}; not in a cluster either): "
            "give --kubeconfig FILE or set $KUBECONFIG"
        ) from None
