"""Plain manifests from the Helm chart: ``helm template`` with the cached helm, one file.

``manifests/hybrid-scheduler.yaml`` is the chart rendered with its default values for the
release ``hybrid-scheduler`` in the namespace ``hybrid-scheduler`` (created first), with
one change: the admission webhook is off, because its certificate is made at install time
and a plain file would have to carry one private key shared by every cluster that applies
it. Pods opt in by naming the scheduler; the chart adds the webhook. The tests render it
again and fail when the committed file differs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

RELEASE = "hybrid-scheduler"
NAMESPACE = "hybrid-scheduler"
#: What the plain manifests change from the chart's defaults, and why (module docstring).
OVERRIDES = ("--set", "webhook.enabled=false")
OUTPUT_NAME = "hybrid-scheduler.yaml"
#: The Kubernetes version the chart is rendered for and tested against (the dev cluster's).
KUBE_VERSION = "v1.34.4"

HEADER = """\
# Generated from helm/hybrid-scheduler by `hybrid-scheduler manifests render`; do not edit.
# The chart's default values, release and namespace "hybrid-scheduler", webhook off.
#   kubectl apply -f manifests/hybrid-scheduler.yaml
"""

NAMESPACE_DOCUMENT = f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
"""


class RenderError(RuntimeError):
    """helm failed; the message carries its own words."""


@dataclass(frozen=True)
class Chart:
    """Where the chart is and which helm renders it."""

    helm: Path
    directory: Path

    def template(self, *args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> str:
        """``helm template`` of the chart with ``args``; raises :class:`RenderError`."""
        argv = [
            str(self.helm),
            "template",
            release,
            str(self.directory),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            *args,
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RenderError(result.stderr.strip() or f"helm exited with {result.returncode}")
        return result.stdout


def render_plain(chart: Chart) -> str:
    """The text of ``manifests/hybrid-scheduler.yaml``."""
    return HEADER + "---\n" + NAMESPACE_DOCUMENT + chart.template(*OVERRIDES)


def write_plain(chart: Chart, out_dir: Path) -> Path:
    """Render into ``out_dir``; return the file written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / OUTPUT_NAME
    target.write_text(render_plain(chart), encoding="utf-8")
    return target
