"""Deliveries from the hub to AutoGen workers: what the hub delivers to an agent type's identity goes
to the type's worker in the hub's order, held while the worker cannot take it yet (it has not
registered the type locally, or not subscribed it to the event's topic), once per worker; what
is settled here (an expired request, an event its worker will not take) is acked with the reason.
Every delivery handled is logged for the launcher's checker (with settings.log_dir)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from .state import Fan, TypeState, Worker, message_from, subscribes

if TYPE_CHECKING:
    from agentnet.client.connection import HubClient

    from .gateway import GatewaySettings
    from .state import Call

log = logging.getLogger("agentnet.gateway.autogen")

# s a worker has, from the first event for a topic it has not subscribed the type to, to subscribe it:
# the event waits (and the type's later deliveries behind it), as a worker drops events it holds no
# subscription for. After that such events are dropped here at once, and logged.
SUBSCRIPTION_WAIT = 3.0
FANNED_MAX = 10_000  # events remembered per worker as fanned out (see Worker.fanned)


class InboxDeliveries:
    """AutogenGateway's side that faces the hub's deliveries (a mixin: it shares the gateway's state)."""

    settings: GatewaySettings
    calls: dict[str, Call]
    _logs: dict[str, Any]

    if TYPE_CHECKING:  # AutogenGateway's, used here

        def _durable(self, gw_id: str) -> None: ...
        def _fail(self, worker: Worker, request_id: str, error: str) -> None: ...
        def _deadline_error(self, call: Call) -> str: ...
        def _store_response(self, ts: TypeState, env: dict, gw_id: str, data: dict[str, Any]) -> None: ...

    # ------------------------------------------------------------------ acks (and the processed-log)

    def _ack(self, client: Any, env: dict, effect: str = "applied", reason: str | None = None) -> None:
        """Record a delivery as handled (see _handled) and ack it; `reason`: why it was settled without
        reaching a worker (observers see it with the ack)."""
        self._handled(client, env, effect)
        client.receipt_nowait(env, reason=reason)

    def _handled(self, client: Any, env: dict, effect: str = "applied") -> None:
        """With settings.log_dir, log a delivery as the launcher's checker expects of every agent, when
        it is handled (handed to a worker, or settled here), in the order the hub delivered it; always
        before its ack. Not fsynced: it survives the process, not the machine."""
        if self.settings.log_dir is not None:
            self._log(client.name, env, effect)

    def _log(self, name: str, env: dict, effect: str) -> None:
        handle = self._logs.get(name)
        if handle is None:
            assert self.settings.log_dir is not None
            folder = self.settings.log_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            handle = self._logs[name] = (folder / "processed.jsonl").open("ab")
        record = {
            "ts": time.time(),
            "agent": name,
            "channel_id": env["channel_id"],
            "seq": env["seq"],
            "envelope_id": env["envelope_id"],
            "causation_id": env.get("causation_id"),
            "attempt": env.get("attempt", 1),
            "effect": effect,
        }
        handle.write(orjson.dumps(record) + b"\n")
        handle.flush()

    # ------------------------------------------------------------------ deliveries from the hub

    def _on_type_frame(self, ts: TypeState, client: HubClient, frame: dict) -> None:
        if frame.get("kind") != "notify" or ts.client is not client:
            return
        env = frame["envelope"]
        env["attempt"] = frame.get("attempt", 1)
        if ts.held is not None:  # until the worker's subscriptions are in place; keeps the hub's order
            ts.held.append(env)
            return
        self._deliver(ts, client, env)

    def _deliver(self, ts: TypeState, client: HubClient, env: dict) -> None:
        owner = ts.owner
        kind = env["type"]
        if owner is None or not owner.alive:
            return  # unacked: the hub keeps it for the next worker
        data = env["data"]
        if kind == "ag.rpc.request":
            gw_id = data["request_id"]
            if gw_id in ts.forwarded:
                if ts.forwarded[gw_id] is None:  # handed on early: now it is stored
                    self._handled(client, env)
                    self._durable(gw_id)
                    answer = ts.answered.pop(gw_id, None)
                    if answer is not None:
                        del ts.forwarded[gw_id]
                        self._store_response(ts, env, gw_id, answer)
                        return
                ts.forwarded[gw_id] = env  # (or a redelivery while the worker still has it)
                return
            self._durable(gw_id)  # the notify comes only once the request is stored
            if data.get("expires_at", 0) < time.time():
                call = self.calls.pop(gw_id, None)
                if call is not None:
                    self._fail(call.caller, call.caller_request_id, self._deadline_error(call))
                # its caller has given up: not handed to a worker
                self._ack(client, env, "rejected", "expired: its caller's deadline passed before a worker took it")
                return
            ts.forwarded[gw_id] = env
            self._handled(client, env)
            call = self.calls.get(gw_id)
            owner.send(call.request if call is not None and call.request is not None else message_from(data))
        elif kind == "ag.event":
            self._deliver_event(ts, client, owner, env, data)
        else:
            self._ack(client, env)  # channel.opened and other bookkeeping

    def _deliver_event(self, ts: TypeState, client: HubClient, owner: Worker, env: dict, data: dict) -> None:
        """An event stored for `ts`: to its worker once the worker holds a subscription of `ts` to the
        topic (before that the worker would drop it), and once per worker: the worker fans an event
        out to all its types subscribed to the topic, so the copies stored for the others are acked
        once that one is on the worker's stream, not sent again."""
        event_id = data.get("event_id", "")
        fan = owner.fanned.get(event_id)
        if fan is not None and ts.name in fan.types:
            self._handled(client, env)  # the worker has it through another of its types
            if fan.written:
                client.receipt_nowait(env)
            elif all(copy["envelope_id"] != env["envelope_id"] for _, copy in fan.copies):  # not a resend
                fan.copies.append((client, env))
            return
        topic = data["topic"]["type"]
        if not any(subscribes(key, topic, ts.name) for key in owner.subs) or any(
            subscribes(key, topic, t) for key in owner.settling for t in owner.types
        ):
            self._hold_for_subscription(ts, client, owner, env, topic)
            return
        fan = Fan(frozenset(t for t in owner.types if any(subscribes(k, topic, t) for k in owner.subs)))
        owner.fanned[event_id] = fan
        if len(owner.fanned) > FANNED_MAX:
            owner.fanned.popitem(last=False)
        self._handled(client, env)

        def written() -> None:  # on the worker's stream: this copy and the others it stands for
            fan.written = True
            client.receipt_nowait(env)
            for other, copy in fan.copies:
                other.receipt_nowait(copy)
            fan.copies.clear()

        owner.send(message_from(data), written)

    def _hold_for_subscription(self, ts: TypeState, client: HubClient, owner: Worker, env: dict, topic: str) -> None:
        """Hold `env`, and the type's later deliveries behind it, until the worker's subscriptions
        change (_subscriptions_changed): at once if one covering the topic is settling (for this type
        or another of the worker's, so that one copy reaches them all); else until SUBSCRIPTION_WAIT
        after the first event that waited for this worker, and then drop such events (_give_up).
        One deadline per worker and type, not per topic: an inbox with events of many topics the
        worker does not want waits 3 s once, not 3 s per topic."""
        soon = any(subscribes(key, topic, ts.name) for key in owner.settling) or any(
            subscribes(key, topic, ts.name) for key in owner.subs
        )
        if not soon:
            loop = asyncio.get_running_loop()
            if ts.wait_until is None:
                ts.wait_until = loop.time() + SUBSCRIPTION_WAIT
            deadline = ts.wait_until
            if loop.time() >= deadline:
                self._drop_unsubscribed(ts, client, owner, env, topic)
                return
            ts.waiting = loop.call_at(deadline, self._give_up, ts)
        ts.held = [env]  # with everything after it (_release)

    def _give_up(self, ts: TypeState) -> None:
        """SUBSCRIPTION_WAIT is over: the held event is dropped (and those like it), the rest go on."""
        ts.waiting = None
        if ts.held:
            self._release(ts)

    def _drop_unsubscribed(self, ts: TypeState, client: HubClient, owner: Worker, env: dict, topic: str) -> None:
        if topic not in ts.dropped_topics:
            ts.dropped_topics.add(topic)
            log.warning(
                "agent type %s: worker %s has not subscribed it to topic %r within %g s; its events on that topic "
                "are dropped until it does, from %s #%d (a worker drops events it holds no subscription for)",
                ts.name,
                owner.client_id,
                topic,
                SUBSCRIPTION_WAIT,
                env["channel_id"],
                env["seq"],
            )
        why = f"dropped: worker {owner.identity} has not subscribed {ts.name} to {topic!r}"
        self._ack(client, env, "rejected", why)

    def _release(self, ts: TypeState) -> None:
        """Hand the type's held deliveries over, in order, until one has to wait again."""
        held, ts.held = ts.held, None
        for timer in (ts.release, ts.waiting):
            if timer is not None:
                timer.cancel()
        ts.release = ts.waiting = None
        if held and ts.client is not None:
            for i, env in enumerate(held):
                self._deliver(ts, ts.client, env)
                if ts.held is not None:  # an event waits for a subscription: the rest wait behind it
                    ts.held.extend(held[i + 1 :])
                    return
