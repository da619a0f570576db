"""Named crash points for fault tests: `AGENTNET_CRASHPOINT=name` makes the process die right there.

Random kills rarely hit narrow windows (after a reply is posted, before its ack); a crash point
hits them every time. Inactive unless the variable names the point.
"""

from __future__ import annotations

import os

_ACTIVE = os.environ.get("AGENTNET_CRASHPOINT", "")


def crashpoint(name: str) -> None:
    if _ACTIVE and name == _ACTIVE:
        os._exit(137)
