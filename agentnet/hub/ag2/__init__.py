"""ag2 1.2.1's hub protocol served on agentnet's hub (paths `/` and `/ag2`); see docs/ag2.md."""

from .endpoint import PATHS, Ag2Endpoint

__all__ = ["PATHS", "Ag2Endpoint"]
