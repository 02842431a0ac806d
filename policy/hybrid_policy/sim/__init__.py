"""The discrete-event simulator: replays a workload through a policy's profile."""
