"""API-key auth: tokens bound to one name (or a few, for a gateway) and one role, compared in constant time."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from agentnet.protocol import redact
from agentnet.protocol.models import Name

# A name, or a prefix ending in `*` ("ag-*": every name that starts with "ag-").
NamePattern = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}\*?$")]


class TokenEntry(BaseModel):
    """One key: `name` (one identity), or `names` (a gateway's identities: names and `prefix*`
    patterns, e.g. the AutoGen sidecar's `[autogen-gw, autogen-registry, "ag-*", "agw-*"]`)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    names: Annotated[list[NamePattern], Field(min_length=1, max_length=64)] | None = None
    role: Literal["agent", "observer", "supervisor"] = "agent"
    token: str = Field(min_length=16, max_length=512)

    @model_validator(mode="after")
    def _one_of_name_and_names(self) -> TokenEntry:
        if (self.name is None) == (self.names is None):
            raise ValueError("give either name or names")
        return self

    def covers(self, name: str) -> bool:
        if self.name is not None:
            return name == self.name
        assert self.names is not None
        return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in self.names)

    @property
    def label(self) -> str:
        return repr(self.name) if self.name is not None else ", ".join(self.names or ())


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
        self._entries = [(e.token.encode(), e) for e in (config.tokens if config else [])]

    def identify(self, token: str | None) -> TokenEntry | None:
        """The entry the token is, or None. Every entry is compared, so timing leaks nothing."""
        if token is None:
            return None
        given = token.encode()
        found = None
        for secret, entry in self._entries:
            if hmac.compare_digest(secret, given):
                found = entry
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
        if who.role != role or not who.covers(name):
            return f"this API key is for {who.role} {who.label}, not {role} {name!r}"
        return None
