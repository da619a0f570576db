"""The wire contract: frames and envelopes (pydantic v2), codec, ids and error codes."""

from .codec import FrameError, decode_client_frame, decode_params, dumps, loads
from .errors import CloseCode, ErrorCode, ProtocolError
from .events import EVENT_TYPES, decode_event
from .frames import (
    CLIENT_FRAME,
    HUB_FRAME,
    OP_PARAMS,
    Hello,
    Receipt,
    Request,
)
from .ids import new_id, utc_iso
from .models import CHANNEL_TYPES, NAME_PATTERN, ChannelInfo, Envelope, Passport

__all__ = [
    "CHANNEL_TYPES",
    "CLIENT_FRAME",
    "EVENT_TYPES",
    "HUB_FRAME",
    "NAME_PATTERN",
    "OP_PARAMS",
    "ChannelInfo",
    "CloseCode",
    "Envelope",
    "ErrorCode",
    "FrameError",
    "Hello",
    "Passport",
    "ProtocolError",
    "Receipt",
    "Request",
    "decode_client_frame",
    "decode_event",
    "decode_params",
    "dumps",
    "loads",
    "new_id",
    "utc_iso",
]
