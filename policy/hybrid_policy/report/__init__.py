"""Turning simulation runs into metrics, tables, JSON and plots."""
