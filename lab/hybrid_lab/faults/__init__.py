"""Fault injection on the dev cluster: faults, the invariant checker, and the report.

The operator runs as two replicas behind a loopback proxy (:mod:`.proxy`) and a fake
Prometheus (:mod:`.prometheus`); a workload flows through three weighted namespaces while
one fault at a time hits the API server, etcd, the watches, the leader, Prometheus, the
objects or the nodes (:mod:`.faults`); :mod:`.checker` watches everything and
:mod:`.run` turns what it saw into one row per fault (:mod:`.report`).
"""
