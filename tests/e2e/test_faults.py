"""The operator under faults on the dev cluster: each fault of
:mod:`hybrid_lab.faults.catalogue` hits while a small workload flows, and afterwards no pod
is stranded, no node overcommitted, no pod bound twice, to a deleted node or by a replica
that did not lead, no replica crashed, and the operator recovered (see
:mod:`hybrid_lab.faults.run`). The replicas, proxy, fake Prometheus and checker are shared
by the whole module; after a fault that broke something the replicas start afresh.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.faults.catalogue import FAULTS
from hybrid_lab.faults.plan import FaultPlan
from hybrid_lab.faults.rig import FaultRig, RigSettings
from hybrid_lab.faults.run import run_and_reset

pytestmark = pytest.mark.e2e
PLAN = FaultPlan.small()


@pytest.fixture(scope="module")
def rig(dev_cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRig]:
    settings = RigSettings(work_dir=tmp_path_factory.mktemp("faults"))
    with FaultRig(dev_cluster.settings, settings) as running:
        yield running


@pytest.mark.parametrize("name", list(FAULTS))
def test_invariants_hold_under_fault(rig: FaultRig, name: str) -> None:
    result = run_and_reset(rig, FAULTS[name], PLAN)
    assert result.pods >= PLAN.pods
    assert result.violations == [], "\n".join(result.details())
