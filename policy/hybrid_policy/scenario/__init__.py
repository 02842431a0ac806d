"""Scenarios: the cluster, the teams and the work to replay, from YAML or built in."""
