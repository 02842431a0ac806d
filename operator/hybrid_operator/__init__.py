"""The edges of hybrid-scheduler: the command line, and (as they land) the kopf operator,
the local dev cluster, the Prometheus collector and the binder.

The decisions themselves live in :mod:`hybrid_policy`; this package turns the outside
world (Kubernetes objects, Prometheus answers, command-line flags) into its domain types
and back.
"""

__version__ = "0.1.0"
