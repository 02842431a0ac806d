"""The tooling around hybrid-scheduler: what people run next to the operator, not in it.

The local dev cluster (built from Go modules, with its assets), the cluster benchmark and
the demo against kube-scheduler, DQN training and timing, the simulator's benchmark
matrix with its tables and figures, bounds and reports, trace conversion and the plain
manifests rendered from the Helm chart. Installed with the ``[lab]`` extra; the operator's
image carries none of it. It may import :mod:`hybrid_operator` and :mod:`hybrid_policy`;
neither imports it.
"""
