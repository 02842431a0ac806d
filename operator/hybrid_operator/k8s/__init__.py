"""Kubernetes objects in and out: the one place raw API objects become domain types."""
