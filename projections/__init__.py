"""projections of agentlog."""
