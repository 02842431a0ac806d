"""The peers side by side: one job stream run by each scheduler on the same kwok nodes.

:mod:`.stream` turns a scenario's jobs into ``batch/v1`` Jobs (and PodGroups) at scaled
times, :mod:`.peers` says how each scheduler is configured for weighted teams,
:mod:`.jobwatch` records the pods of a round as the API server shows them,
:mod:`.metrics` reduces those records to the compared figures, :mod:`.processes` reads a
scheduler's CPU time and memory from ``/proc``, :mod:`.rounds` drives one scheduler after
the other, :mod:`.prediction` asks the simulator for the same jobs, and :mod:`.report`
prints the table and draws the figure; ``hybrid-scheduler cluster-bench --compare`` is the
command.
"""
