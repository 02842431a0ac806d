"""Plugins for each framework phase: filters, scorers, queue sorts and arbitrators."""
