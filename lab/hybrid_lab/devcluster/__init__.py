"""A real local Kubernetes cluster for tests and the demo, without containers.

etcd, kube-apiserver, kube-controller-manager and (optionally) kube-scheduler are built
from their Go modules into a versioned cache, started on loopback with RBAC and a token
file, and kwok simulates the nodes. Prometheus (Debian package) scrapes a small exporter
of ours that derives DCGM and kubelet style utilisation from the pods bound to each node.
The ``hybrid-scheduler dev-cluster`` command (:mod:`.command`) is the entry point.
"""
