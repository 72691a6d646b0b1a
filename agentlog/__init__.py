"""agentlog core."""
