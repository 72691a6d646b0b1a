"""Adapters that put agent frameworks under agentlog (each an optional extra)."""
