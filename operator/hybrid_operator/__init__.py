"""The operator of hybrid-scheduler: exactly what its image runs.

Settings, the Kubernetes edge (conversion, API calls), the scheduling loop and its binder,
leader election, the admission webhook, the Prometheus collector, observability, and the
``run`` and ``explain`` commands.

The decisions themselves live in :mod:`hybrid_policy`; this package turns the outside
world (Kubernetes objects, Prometheus answers, command-line flags) into its domain types
and back.
"""

__version__ = "0.1.0"
