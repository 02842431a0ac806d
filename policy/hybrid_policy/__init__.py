"""The decision core of hybrid-scheduler: domain types, the scheduling framework, scorers,
arbiters, the discrete-event simulator, scenarios, trace loaders and schedule-quality
metrics.

Nothing here talks to Kubernetes, Prometheus or the network: the operator converts the
outside world into these types, and the simulator drives the very same code.
"""
