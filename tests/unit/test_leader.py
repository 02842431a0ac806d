import copy

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hybrid_operator.leader import LeaderElector


def _version(lease: client.V1Lease | None) -> str | None:
    return lease.metadata.resource_version if lease is not None and lease.metadata else None


def _spec(store: "FakeLeases") -> client.V1LeaseSpec:
    assert store.lease is not None
    assert store.lease.spec is not None
    spec: client.V1LeaseSpec = store.lease.spec
    return spec


class FakeLeases:
    """A Lease store with the API server's optimistic concurrency."""

    def __init__(self) -> None:
        self.lease: client.V1Lease | None = None
        self.version = 0

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        if self.lease is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.lease)

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        if self.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._store(body)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: client.V1Lease
    ) -> client.V1Lease:
        if self.lease is None or _version(body) != _version(self.lease):
            raise ApiException(status=409, reason="Conflict")
        return self._store(body)

    def _store(self, body: client.V1Lease) -> client.V1Lease:
        self.version += 1
        body = copy.deepcopy(body)
        assert body.metadata is not None
        body.metadata.resource_version = str(self.version)
        self.lease = body
        return body


def _elector(store: FakeLeases, identity: str, clock: list[float]) -> LeaderElector:
    elector = LeaderElector(
        client.ApiClient(), identity, lease_duration_s=15.0, clock=lambda: clock[0]
    )
    elector.api = store  # type: ignore[assignment]
    return elector


def test_one_leader_renews_and_a_standby_takes_over_after_the_lease_lapses() -> None:
    store, clock = FakeLeases(), [0.0]
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    for _ in range(10):  # a keeps renewing: b never takes over
        clock[0] += 2.0
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    clock[0] += 14.0  # a stopped renewing 14 s ago: not yet
    assert not b.try_acquire_or_renew()
    clock[0] += 2.0
    assert b.try_acquire_or_renew()
    assert _spec(store).holder_identity == "b"
    assert _spec(store).lease_transitions == 1
    assert not a.try_acquire_or_renew()  # the old leader sees b and steps down
    assert not a.is_leader


def test_two_contenders_racing_for_a_lapsed_lease_cannot_both_win() -> None:
    store, clock = FakeLeases(), [0.0]
    a = _elector(store, "a", clock)
    assert a.try_acquire_or_renew()
    b, c = _elector(store, "b", clock), _elector(store, "c", clock)
    b.try_acquire_or_renew()
    c.try_acquire_or_renew()
    clock[0] += 20.0
    stale = store.read_namespaced_lease("hybrid-scheduler", "default")
    assert b.try_acquire_or_renew()
    # c read the Lease before b wrote it: its write carries the old resourceVersion.
    c.api = type(
        "Stale",
        (),
        {
            "read_namespaced_lease": lambda *_: copy.deepcopy(stale),
            "replace_namespaced_lease": store.replace_namespaced_lease,
        },
    )()
    assert not c.try_acquire_or_renew()
    assert _spec(store).holder_identity == "b"


def test_an_unreadable_lease_means_no_leadership() -> None:
    class Broken:
        def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
            raise ApiException(status=500, reason="Internal Server Error")

    elector = _elector(FakeLeases(), "a", [0.0])
    elector.is_leader = True
    elector.api = Broken()  # type: ignore[assignment]
    assert not elector.try_acquire_or_renew()
    assert not elector.is_leader
