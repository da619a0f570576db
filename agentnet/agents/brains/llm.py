"""The llm brain: asks an OpenAI-compatible chat-completions endpoint, with the stdlib only."""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pydantic import Field, field_validator

from agentnet.agents.brains.base import BrainError, BrainReply, BrainRequest
from agentnet.agents.brains.options import BrainOptions

MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # a chat completion is kilobytes; anything bigger is a wrong endpoint
SNIPPET_CHARS = 200


class LlmOptions(BrainOptions):
    base_url: str = Field(description="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1.")
    model: str = Field(min_length=1, description="Model name sent in the request.")
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="Environment variable holding the API key; if it is unset, no Authorization header.",
    )
    system: str | None = Field(default=None, description="System prompt, sent first.")
    timeout: float = Field(default=30.0, gt=0, le=600, description="Seconds per HTTP attempt.")
    retries: int = Field(default=2, ge=0, le=10, description="Extra attempts on connection errors, 429 and 5xx.")
    retry_backoff: float = Field(
        default=0.25,
        ge=0,
        le=30,
        description="Seconds before the first retry; doubles on each further retry.",
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    max_history: int | None = Field(
        default=50, ge=0, description="Send at most this many of the latest history entries (None: all)."
    )
    label_senders: bool = Field(
        default=False,
        description='Prefix the others\' messages with "sender: " (useful in multi-party discussions).',
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, url: str) -> str:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"must be an http(s) URL like http://127.0.0.1:8000/v1 (got {url!r})")
        return url.rstrip("/")


class LlmBrain:
    name = "llm"

    def __init__(self, options: LlmOptions, *, agent: str) -> None:
        self.options = options
        self.agent = agent
        self.base_url = options.base_url
        self.url = options.base_url + "/chat/completions"
        # Environment proxies must not capture a local model server (the common case, and the tests).
        host = urllib.parse.urlsplit(self.url).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(host) else []
        self._opener = urllib.request.build_opener(*handlers)

    def build_messages(self, request: BrainRequest) -> list[dict[str, str]]:
        """system, then the history (own entries as assistant, others as user), then the current text."""
        messages: list[dict[str, str]] = []
        if self.options.system:
            messages.append({"role": "system", "content": self.options.system})
        history = request.history
        if self.options.max_history is not None:
            history = history[len(history) - self.options.max_history :] if self.options.max_history else ()
        for entry in history:
            data = entry.get("data")
            text = data.get("text") if isinstance(data, dict) else None
            if not isinstance(text, str) or not text:
                continue  # control envelopes (joins, step markers) carry no conversational text
            sender = str(entry.get("sender", ""))
            if sender == self.agent:
                messages.append({"role": "assistant", "content": text})
            else:
                messages.append({"role": "user", "content": self._label(sender, text)})
        messages.append({"role": "user", "content": self._label(request.sender, request.text)})
        return messages

    def _label(self, sender: str, text: str) -> str:
        return f"{sender}: {text}" if self.options.label_senders and sender else text

    def build_body(self, request: BrainRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.options.model, "messages": self.build_messages(request)}
        if self.options.temperature is not None:
            body["temperature"] = self.options.temperature
        if self.options.max_tokens is not None:
            body["max_tokens"] = self.options.max_tokens
        return body

    async def reply(self, request: BrainRequest) -> BrainReply:
        body = json.dumps(self.build_body(request)).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.options.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        attempts = self.options.retries + 1
        problem = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.options.retry_backoff * 2 ** (attempt - 1))
            try:
                status, payload = await asyncio.to_thread(self._post, body, headers)
            except _TransportError as exc:
                problem = str(exc)
                continue
            if status == 429 or status >= 500:
                problem = f"returned HTTP {status}: {_snippet(payload)}"
                continue
            if status >= 400:  # a wrong model, key or URL: retrying will not help
                raise BrainError(f"llm endpoint {self.base_url} returned HTTP {status}: {_snippet(payload)}")
            return self._parse(payload)
        plural = "attempt" if attempts == 1 else "attempts"
        raise BrainError(f"llm endpoint {self.base_url} {problem} (after {attempts} {plural})")

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Blocking HTTP POST (run in a thread): (status, body), or _TransportError."""
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.options.timeout) as resp:
                return resp.status, resp.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            try:
                payload = exc.read(MAX_RESPONSE_BYTES)
            except OSError:
                payload = b""
            return exc.code, payload
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise _TransportError(f"timed out after {self.options.timeout:g}s") from None
            raise _TransportError(f"unreachable: {reason}") from None
        except TimeoutError:
            raise _TransportError(f"timed out after {self.options.timeout:g}s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _TransportError(f"failed: {type(exc).__name__}: {exc}") from None

    def _parse(self, payload: bytes) -> BrainReply:
        where = f"llm endpoint {self.base_url}"
        try:
            doc = json.loads(payload)
        except ValueError:
            raise BrainError(f"{where} returned invalid JSON: {_snippet(payload)}") from None
        if not isinstance(doc, dict):
            raise BrainError(f"{where} returned JSON that is not an object: {_snippet(payload)}")
        choices = doc.get("choices")
        if not isinstance(choices, list) or not choices:
            raise BrainError(f"{where} returned no choices")
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise BrainError(f"{where} returned a choice without message content")
        data: dict[str, Any] = {"model": doc.get("model", self.options.model)}
        if choice.get("finish_reason") is not None:
            data["finish_reason"] = choice["finish_reason"]
        if isinstance(doc.get("usage"), dict):
            data["usage"] = doc["usage"]
        return BrainReply(text=content, data=data)

    async def aclose(self) -> None:
        return None  # no pooled connections: each request opens and closes its own


class _TransportError(Exception):
    """The request did not get an HTTP response (refused, reset, timed out)."""


def _snippet(payload: bytes) -> str:
    text = payload.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict) and doc["error"].get("message"):
        text = str(doc["error"]["message"])  # the OpenAI error shape
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "..."


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
