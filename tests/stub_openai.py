"""A tiny OpenAI-compatible chat-completions server on 127.0.0.1, for tests (stdlib only, background thread).

with StubOpenAI() as stub:                  # ephemeral port
    brain = make_brain("llm", {"base_url": stub.base_url, "model": "m"}, agent="a")
    ...
    stub.stop()                             # now the endpoint refuses connections
    stub.start()                            # back, on the same port
    stub.fail_next(2)                       # the next 2 requests get HTTP 500
    stub.queue_response({"choices": []})    # the next request gets exactly this
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ReplyFn = Callable[[dict[str, Any]], str]


def default_reply(body: dict[str, Any]) -> str:
    """ "stub: " + the last user message."""
    messages = body.get("messages") or []
    last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    return f"stub: {last_user}"


class StubOpenAI:
    """POST /v1/chat/completions answers with reply(body); GET /v1/models lists one model."""

    def __init__(self, reply: ReplyFn = default_reply, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.reply = reply
        self.host = host
        self.port = port  # 0 until started: then the bound port, kept for restarts
        self.requests: list[dict[str, Any]] = []  # JSON bodies received by chat/completions, in order
        self.headers: list[dict[str, str]] = []  # their headers (same order)
        self.delay = 0.0  # seconds to wait before answering (to test client timeouts)
        self._fail_left = 0
        self._fail_status = 500
        self._queued: list[tuple[int, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> StubOpenAI:
        """Listen (on the same port as before, if it ran already); returns once it accepts connections."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._stopping.clear()
        self._server = server
        # The socket is bound and listening already; the thread only runs the accept loop.
        # A short poll interval only makes stop() quick (serve_forever notices shutdown between polls).
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name=f"stub-openai-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; afterwards connections to the port are refused."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers waiting out a delay
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> StubOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ behaviour

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` chat requests with HTTP `status` (an OpenAI-shaped error body)."""
        with self._lock:
            self._fail_left = count
            self._fail_status = status

    def queue_response(self, payload: dict[str, Any], status: int = 200) -> None:
        """Answer one coming chat request with exactly this payload (queued ones go first, in order)."""
        with self._lock:
            self._queued.append((status, payload))

    def _answer(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            if self._queued:
                return self._queued.pop(0)
            if self._fail_left > 0:
                self._fail_left -= 1
                status = self._fail_status
                return status, {"error": {"message": f"stub failure (HTTP {status})", "type": "server_error"}}
            number = next(self._ids)
        if self.delay > 0:
            self._stopping.wait(self.delay)
        content = self.reply(body)
        model = body.get("model", "stub-model")
        return 200, {
            "id": f"chatcmpl-stub-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }


def _handler_for(stub: StubOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "StubOpenAI/1"

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                self._send(400, {"error": {"message": f"bad JSON: {exc}", "type": "invalid_request_error"}})
                return
            status, payload = stub._answer(body, {k.lower(): v for k, v in self.headers.items()})
            self._send(status, payload)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (a timeout under test): no answer to write, no traceback

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output clean

    return Handler
