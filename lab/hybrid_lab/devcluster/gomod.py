"""go.mod text for the wrapper modules the dev cluster builds its Go binaries from.

Go applies ``replace`` directives only from the main module, so a module whose go.mod
replaces its Kubernetes dependencies (k8s.io/kubernetes itself, scheduler-plugins) cannot
be ``go install``-ed; a small wrapper module of ours requires it and carries the replace
directives instead. For a peer, they are the upstream ones with every Kubernetes module
moved to the cluster's own Kubernetes version, so the peer's scheduler framework is the
code the cluster's kube-scheduler runs (and every pinned module is one the proxy serves).
"""

from __future__ import annotations

import re

from hybrid_lab.devcluster.settings import Versions

KUBERNETES_MODULE = "k8s.io/kubernetes"


def staging_modules(upstream_go_mod: str) -> list[str]:
    """The k8s.io modules that k8s.io/kubernetes replaces with its ./staging directories."""
    found = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", upstream_go_mod, re.M)
    return sorted(set(found))


def module_replaces(go_mod: str) -> dict[str, str]:
    """The ``M => M version`` directives of a go.mod (in a block or one per line), by module.

    Directives to a local directory or to another module are left out: a wrapper pins
    versions only.
    """
    pattern = r"^\s*(?:replace\s+)?([\w./~-]+)\s+=>\s+\1\s+(v[\w.+-]+)\s*$"
    return dict(re.findall(pattern, go_mod, re.M))


def replaces_pinned_to(replaces: dict[str, str], versions: Versions) -> dict[str, str]:
    """``replaces`` with k8s.io/kubernetes at the cluster's version, and every k8s.io
    module pinned at the upstream's matching staging version at the cluster's staging one.

    Other pins (a module of an older release line, a non-Kubernetes module) are kept.
    """
    upstream = replaces.get(KUBERNETES_MODULE)
    upstream_staging = "v0." + upstream.removeprefix("v1.") if upstream else None
    pinned: dict[str, str] = {}
    for module, version in replaces.items():
        if module == KUBERNETES_MODULE:
            pinned[module] = versions.kubernetes
        elif module.startswith("k8s.io/") and version == upstream_staging:
            pinned[module] = versions.staging
        else:
            pinned[module] = version
    return pinned


def wrapper_go_mod(name: str, requires: dict[str, str], replaces: dict[str, str]) -> str:
    """go.mod text of a wrapper module requiring ``requires`` and pinning ``replaces``."""
    lines = [f"module hybrid-scheduler.local/{name}", "", "go 1.24.0", ""]
    lines += [f"require {module} {version}" for module, version in requires.items()]
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{module} => {module} {version}" for module, version in replaces.items()]
        lines.append(")")
    return "\n".join(lines) + "\n"
