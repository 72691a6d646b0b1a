"""replay of agentlog."""
