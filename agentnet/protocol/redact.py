"""Keep secrets out of every log line: a logging filter installed on every handler.

Two nets, both applied to the formatted message and to any traceback text:

* the secrets this process knows (API keys loaded from an auth file, `--token`, `$AGENTNET_TOKEN`),
  registered with `add_secret`, are replaced wherever they appear, whatever surrounds them;
* shapes that carry a credential are masked even when the value is unknown here:
  `Authorization: <scheme> <value>`, `Bearer <value>`, a JSON `"token": "<value>"`,
  `--token <value>`, `AGENTNET_TOKEN=<value>`, and keys made by `agentnet.hub.auth.new_token`.

websockets logs every header of the upgrade request at DEBUG, so without this filter
`--log-level debug` would write each agent's key to the hub's log.
"""

from __future__ import annotations

import logging
import os
import re

MASK = "[redacted]"
_MIN_SECRET = 4  # shorter "secrets" would mask ordinary words
_PIECE = 8  # any run of this many characters of a known secret is masked (websockets elides long frames)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(authorization\s*[:=]\s*['\"]?)[^\r\n'\"]+"), r"\1" + MASK),
    (re.compile(r"(?i)\b(bearer\s+)[^\s'\",;]+"), r"\1" + MASK),
    (re.compile(r"(?i)(['\"]token['\"]\s*:\s*['\"])[^'\"]*"), r"\1" + MASK),
    (re.compile(r"(?i)(--token[=\s]+)\S+"), r"\1" + MASK),
    (re.compile(r"(AGENTNET_TOKEN\s*[=:]\s*['\"]?)[^\s'\"]+"), r"\1" + MASK),
    (re.compile(r"\ban_[A-Za-z0-9_-]{16,}"), MASK),
)

_secrets: set[str] = set()


def add_secret(secret: str | None) -> None:
    """Mask this exact string in every log line from now on."""
    if secret and len(secret) >= _MIN_SECRET:
        _secrets.add(secret)


def _mask_pieces(text: str, secret: str) -> str:
    """Mask every run of at least _PIECE characters of `secret` in `text`: a debug log that elides
    the middle of a long frame (`'{"kind":"hello",...ob-Secret-4f9a"}}'`) keeps a piece of a key."""
    pieces = {secret[i : i + _PIECE] for i in range(len(secret) - _PIECE + 1)}
    out: list[str] = []
    start = k = 0
    while k <= len(text) - _PIECE:
        if text[k : k + _PIECE] in pieces:
            end = k + _PIECE
            while end < len(text) and text[k : end + 1] in secret:
                end += 1
            out += [text[start:k], MASK]
            start = k = end
        else:
            k += 1
    out.append(text[start:])
    return "".join(out)


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
        if len(secret) > _PIECE:
            text = _mask_pieces(text, secret)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactFilter(logging.Filter):
    """Rewrites a record's message (and traceback text) with secrets masked; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactFilter()


def protect_handler(handler: logging.Handler) -> logging.Handler:
    if _FILTER not in handler.filters:
        handler.addFilter(_FILTER)
    return handler


def install(*loggers: logging.Logger) -> None:
    """Put the filter on every handler of the root logger (and of `loggers`), and register the
    token of the environment. Call after logging is configured, and again for handlers added later."""
    add_secret(os.environ.get("AGENTNET_TOKEN"))
    for logger in (logging.getLogger(), *loggers):
        for handler in logger.handlers:
            protect_handler(handler)
