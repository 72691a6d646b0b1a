"""processors of agentlog."""
