"""``hybrid-scheduler manifests render``: write manifests/ from the Helm chart.

Uses the helm the dev cluster builds (``hybrid-scheduler dev-cluster build``) unless
``--helm`` names another. ``--check`` writes nothing and exits 1 when the file on disk
differs from a fresh render (the drift the tests look for).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from hybrid_lab.manifests import OUTPUT_NAME, Chart, RenderError, render_plain, write_plain
from hybrid_operator.commands.arguments import UsageError, output_dir


def register(subparsers: Any) -> None:
    """Add the ``manifests`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "manifests", help="plain manifests from the Helm chart", description=__doc__
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    render = actions.add_parser("render", help="render helm/hybrid-scheduler into manifests/")
    render.add_argument("--chart", type=Path, default=Path("helm/hybrid-scheduler"))
    render.add_argument("--out", type=output_dir, default=Path("manifests"))
    render.add_argument("--helm", type=Path, help="helm binary (default: the cached build)")
    render.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    render.set_defaults(handler=run)


def cached_helm() -> Path:
    """The helm binary built into the dev cluster's cache."""
    from hybrid_lab.devcluster.build import find_binary
    from hybrid_lab.devcluster.settings import ClusterSettings

    return find_binary(ClusterSettings(), "helm")


def run(args: argparse.Namespace) -> int:
    """Render, or compare with ``--check``."""
    helm = args.helm or cached_helm()
    if not helm.is_file() or not os.access(helm, os.X_OK):
        print(
            f"hybrid-scheduler manifests: no helm program at {helm}; "
            "run 'hybrid-scheduler dev-cluster build' or give --helm",
            file=sys.stderr,
        )
        return 2
    if not (args.chart / "Chart.yaml").is_file():
        raise UsageError(f"--chart: {args.chart} is not a Helm chart (no Chart.yaml)")
    chart = Chart(helm, args.chart)
    try:
        if args.check:
            target = args.out / OUTPUT_NAME
            current = target.read_text(encoding="utf-8") if target.exists() else ""
            if current != render_plain(chart):
                print(
                    f"hybrid-scheduler manifests: {target} differs from the chart; "
                    "run 'hybrid-scheduler manifests render'",
                    file=sys.stderr,
                )
                return 1
            print(f"{target} matches the chart")
            return 0
        print(f"wrote {write_plain(chart, args.out)}")
    except RenderError as exc:
        print(f"hybrid-scheduler manifests: helm: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        raise UsageError(f"--out: cannot write into {args.out}: {exc.strerror or exc}") from None
    return 0
