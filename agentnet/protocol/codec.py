"""Decoding and encoding of frames: one call turns a text message into a typed frame or a specific error.

orjson does the parsing: it is several times faster than the stdlib on the hub's hot path and it
already refuses NaN/Infinity, lone surrogates (which sqlite3 and websockets cannot encode later)
and absurd numbers. What it accepts is then bounded here (nesting depth, string sizes) and checked
against the pydantic models, so nothing the hub stores is something it cannot deliver.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from .errors import CloseCode, ErrorCode
from .frames import CLIENT_FRAME, OP_PARAMS, REQUEST, ClientFrame, WireModel

MAX_DEPTH = 32
MAX_INT = 2**63 - 1  # a signed 64-bit integer: -2**63 .. 2**63 - 1
MIN_INT = -(2**63)


class FrameError(Exception):
    """A frame the hub cannot accept: what to tell the peer and how to close."""

    def __init__(self, code: ErrorCode, message: str, close_code: CloseCode = CloseCode.POLICY) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def loads(data: str | bytes) -> Any:
    return orjson.loads(data)


def check_value(value: Any, what: str = "value") -> None:
    """Refuse nesting deeper than MAX_DEPTH and integers beyond 64 bits.

    Recursive, but bounded: it raises at MAX_DEPTH, whatever depth the parser allowed. Scalars other
    than ints are never visited (a call per string would double the cost of a typical post).
    """
    _check(value, 0, what)


_VISIT = (dict, list, int)


def _check(item: Any, depth: int, what: str) -> None:
    kind = type(item)
    if kind is dict or kind is list:
        if depth >= MAX_DEPTH:
            raise FrameError(ErrorCode.INVALID, f"{what} is nested deeper than {MAX_DEPTH} levels")
        for child in item.values() if kind is dict else item:
            if type(child) in _VISIT:
                _check(child, depth + 1, what)
    elif kind is int and not MIN_INT <= item <= MAX_INT:
        raise FrameError(ErrorCode.INVALID, f"{what} holds an integer beyond 64 bits")


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first problems: `params.channel_id: field required`."""
    parts = []
    for err in exc.errors()[:3]:
        loc_parts = [str(p) for p in err["loc"]]
        if loc_parts and loc_parts[0] in ("hello", "request", "receipt", "post"):
            loc_parts = loc_parts[1:]  # the discriminator tag adds nothing for the reader
        loc = ".".join(loc_parts) or "frame"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode_client_frame(data: str | bytes, *, binary: bool = False) -> ClientFrame:
    """Text message -> Hello | Request | Receipt, or FrameError with the contract's codes.

    `data` may be bytes holding the UTF-8 text; `binary` says the peer sent a binary frame.
    """
    if binary:
        raise FrameError(
            ErrorCode.INVALID, "binary frames are not accepted; send JSON text", CloseCode.UNSUPPORTED_DATA
        )
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FrameError(ErrorCode.INVALID, f"invalid JSON: {exc}", CloseCode.INVALID_PAYLOAD) from None
    if not isinstance(raw, dict):
        raise FrameError(ErrorCode.INVALID, f"a frame must be a JSON object, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind not in ("hello", "request", "receipt"):
        raise FrameError(
            ErrorCode.INVALID, f"unknown frame kind {kind!r}" if kind is not None else "frame has no 'kind'"
        )
    check_value(raw, "frame")
    try:
        return CLIENT_FRAME.validate_python(raw)
    except ValidationError as exc:
        error = exc
    if kind == "request" and raw.get("op") == "post":
        # A post is validated with its params in one call. A sound frame with bad params is not a
        # frame error: it gets an error response from the core, and the connection stays open.
        try:
            return REQUEST.validate_python(raw)
        except ValidationError as exc:
            error = exc
    raise FrameError(ErrorCode.INVALID, f"{kind} frame: {describe_validation_error(error)}")


def decode_params(op: str, params: dict[str, Any]) -> WireModel:
    """Validate a request's params against its op's model. Raises ProtocolError(invalid)."""
    from .errors import ProtocolError

    model = OP_PARAMS.get(op)
    if model is None:
        raise ProtocolError(ErrorCode.INVALID, f"unknown op {op!r}; known ops: {', '.join(sorted(OP_PARAMS))}")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.INVALID, f"{op}: {describe_validation_error(exc)}") from None
