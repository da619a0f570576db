"""A python brain for the workflow revision test: the editor sends the first draft back once."""

from __future__ import annotations

from agentnet.agents.brains import BrainRequest


def editor(request: BrainRequest) -> dict:
    if not any(h["type"] == "revise" for h in request.history):
        return {"text": f"too long: {request.text}", "data": {"revise": True}}
    return {"text": f"Edited: {request.text}"}
