"""`agentnet bench`: throughput and latency of a hub measured with real processes on loopback."""
