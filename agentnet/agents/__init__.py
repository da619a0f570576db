"""The agent process: runtime, reconnect, dedup, brains."""
