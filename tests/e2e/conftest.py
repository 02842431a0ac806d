"""Fixtures for tests against the real local dev cluster (marker ``e2e``).

``dev_cluster`` starts the cluster once per session with 4 kwok nodes, the default
scheduler and Prometheus, unless one is already running from the same state directory;
a cluster this session started is stopped at the end, one it found is left running.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.testing import DevCluster, session_cluster
from hybrid_lab.devcluster.workload import fresh_namespace

E2E_NODES = 4


@pytest.fixture(scope="session")
def dev_cluster() -> Iterator[DevCluster]:
    try:
        with session_cluster(E2E_NODES) as running:
            yield running
    except DevClusterError as err:
        pytest.fail(f"dev cluster: {err}", pytrace=False)


@pytest.fixture
def namespace(dev_cluster: DevCluster) -> Iterator[str]:
    with fresh_namespace(dev_cluster.admin, f"e2e-{uuid.uuid4().hex[:8]}") as name:
        yield name
