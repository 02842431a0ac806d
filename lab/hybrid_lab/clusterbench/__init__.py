"""The cluster benchmark: our operator and the real kube-scheduler on the same kwok nodes.

:mod:`.watch` follows pods through a watch and timestamps their bindings,
:mod:`.schedulers` starts the scheduler under test as a process of its own,
:mod:`.apimetrics` counts API calls from the API server's own metrics, and
:mod:`.run` drives the phases (a burst of pending pods, then a steady arrival) and
summarises them; ``hybrid-scheduler cluster-bench`` is the command.
"""
