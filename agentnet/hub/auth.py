"""API-key auth: tokens bound to one name and one role, compared in constant time."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentnet.protocol import redact
from agentnet.protocol.models import Name


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Literal["agent", "observer", "supervisor"] = "agent"
    token: str = Field(min_length=16, max_length=512)


class AuthConfig(BaseModel):
    """The hub's key file: `tokens: [{name, role, token}, ...]`."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[TokenEntry]


class AuthError(Exception):
    pass


def bearer_token(header: str | None) -> str | None:
    """The credentials of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 9110).
    None without a header; "" for another scheme or an empty token (which no key matches)."""
    if header is None:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return credentials.strip()


def new_token() -> str:
    return "an_" + secrets.token_urlsafe(24)


def load_auth_file(path: str | Path) -> AuthConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text())
        return AuthConfig.model_validate(raw)
    except OSError as exc:
        raise AuthError(f"cannot read auth file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AuthError(f"auth file {path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise AuthError(f"auth file {path}: {loc}: {first['msg']}") from None


def write_auth_file(path: str | Path, entries: list[TokenEntry]) -> None:
    p = Path(path)
    p.write_text(yaml.safe_dump(AuthConfig(tokens=entries).model_dump(), sort_keys=False))
    p.chmod(0o600)


class Authenticator:
    """Who a token lets you be. `None` config = auth off (anyone may be anyone)."""

    def __init__(self, config: AuthConfig | None) -> None:
        self.enabled = config is not None
        for entry in config.tokens if config else []:
            redact.add_secret(entry.token)
        self._entries = [(e.token.encode(), e.name, e.role) for e in (config.tokens if config else [])]

    def identify(self, token: str | None) -> tuple[str, str] | None:
        """(name, role) the token is bound to, or None. Every entry is compared, so timing leaks nothing."""
        if token is None:
            return None
        given = token.encode()
        found = None
        for secret, name, role in self._entries:
            if hmac.compare_digest(secret, given):
                found = (name, role)
        return found

    def check(self, token: str | None, name: str, role: str) -> str | None:
        """None if this token may act as (name, role), else the reason it may not."""
        if not self.enabled:
            return None
        if token is None:
            return "this hub requires an API key (hello.auth.token or Authorization: Bearer)"
        who = self.identify(token)
        if who is None:
            return "unknown API key"
        if who != (name, role):
            return f"this API key is for {who[1]} {who[0]!r}, not {role} {name!r}"
        return None
