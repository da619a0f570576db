"""The hub's delivery and keepalive settings, defined once.

`agentnet hub` makes its options from these models (`add_arguments`, defaults shown in `--help`),
`HubSettings` nests them, a scenario's `hub.delivery` / `hub.keepalive` are these models, the
launcher turns them back into `agentnet hub` options (`cli_args`), and `CoreConfig` takes its
defaults from them. One set of bounds, checked wherever a value comes in.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Settings(BaseModel):
    # strict: a YAML or CLI value is taken as written ("5" is not 5); frozen: shared safely.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
        """One `--kebab-name` option per field, with its description and default in the help."""
        for name, info in cls.model_fields.items():
            kind = int if info.annotation is int else float
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                type=kind,
                default=info.default,
                metavar="N" if kind is int else "S",
                help=f"{info.description} (default: {info.default:g})",
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Any:
        """The settings from parsed options; ValueError naming the option if one is out of bounds."""
        try:
            return cls(**{name: getattr(args, name) for name in cls.model_fields})
        except ValidationError as exc:
            err = exc.errors()[0]
            option = "--" + str(err["loc"][0]).replace("_", "-")
            raise ValueError(f"{option}: {err['msg'].lower()}") from None

    def cli_args(self) -> list[str]:
        """These settings as `agentnet hub` options (what the launcher passes its hub)."""
        out: list[str] = []
        for name in type(self).model_fields:
            out += ["--" + name.replace("_", "-"), str(getattr(self, name))]
        return out


class DeliverySettings(_Settings):
    """At-least-once delivery (protocol v1, section 5)."""

    window: int = Field(256, ge=1, le=100_000, description="Unacked deliveries in flight per recipient.")
    ack_wait: float = Field(
        30.0, gt=0, le=86_400, allow_inf_nan=False, description="Seconds without a receipt before a redelivery."
    )
    max_deliver: int = Field(5, ge=1, le=1000, description="Attempts before an envelope is dead-lettered.")
    nack_backoff: float = Field(
        0.5,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="Seconds before redelivering a nacked envelope; doubles per attempt, up to 30 s.",
    )


class KeepaliveSettings(_Settings):
    """WebSocket keepalive: a peer that does not answer a ping within ping_timeout is dropped."""

    ping_interval: float = Field(5.0, gt=0, le=3600, allow_inf_nan=False, description="Seconds between pings.")
    ping_timeout: float = Field(10.0, gt=0, le=3600, allow_inf_nan=False, description="Seconds to wait for the pong.")


DELIVERY = DeliverySettings()  # the defaults
KEEPALIVE = KeepaliveSettings()
