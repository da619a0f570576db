"""AutoGen 0.7.5 gRPC gateway (`agentnet gateway autogen`); needs the `agentnet[autogen]` extra."""
