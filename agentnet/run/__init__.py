"""What the launcher and the dashboard share, below both: feed items, the recording format, the
control verbs and errors, and the client of a running launcher's control socket.

The launcher (`agentnet.launcher`) produces feed items and serves controls; the dashboard
(`agentnet.tui`) consumes the items and calls the controls; neither imports the other. See the
import-linter contract in pyproject.toml.
"""
