"""``FakeLLMServer``: a deterministic OpenAI-compatible HTTP server in a background thread.

Standard library only (``http.server.ThreadingHTTPServer``). It answers with the
``Brain`` of ``rules.py`` through a ``WireFormat`` (``openai_wire.py``), records every
request, and plays injected faults (``faults.py``). Invariants:
- HTTP/1.1 keep-alive with ``Content-Length`` on every answer (streams included) and
  ``TCP_NODELAY``, so thousands of requests cost little more than their JSON.
- The request body is parsed once; recording keeps the raw bytes and that parse.
- ``stop()`` closes the listening socket and every open connection and joins the thread.
- The server never prints: handler errors go to the ``power_loop`` logger at DEBUG.

Example:
    >>> from power_loop.testing.fake_server import FakeLLMServer
    >>> with FakeLLMServer() as server:
    ...     server.base_url.endswith("/v1")
    True
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError, UsageError
from power_loop.contracts.json import JSONObject
from power_loop.testing.fake_server.faults import FAULT_HEADER, Fault, FaultQueue, parse_fault_header
from power_loop.testing.fake_server.openai_wire import OpenAIWire
from power_loop.testing.fake_server.rules import Brain, Rule
from power_loop.testing.fake_server.wire import WireCall, WireFormat, WireReply

__all__ = ["FakeLLMServer", "RecordedRequest"]

logger = logging.getLogger(__name__)

_REPLY_FAULTS = frozenset({"malformed_tool_json", "empty_choices", "truncated_stream"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    json: JSONObject = field(default_factory=dict)
    """The parsed body (empty when it was not a JSON object)."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: FakeLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("fake LLM server: error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake LLM server: " + format, *args)

    def do_GET(self) -> None:
        self.server.owner._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.owner._serve(self, "POST")

    def send(self, reply: WireReply) -> None:
        head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}",
                f"Content-Type: {reply.content_type}", f"Content-Length: {len(reply.body)}"]
        head.extend(f"{name}: {value}" for name, value in reply.headers)
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body)

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeLLMServer:
    """A fake LLM provider on ``http://host:port/v1`` (see the module docstring).

    Args:
        host: interface to bind.
        port: TCP port; 0 picks a free one.
        model: the model name answered when a request names none, and listed by
            ``GET /v1/models``.
        rules: user rules, tried before the built-in ones.
        cached_tokens: ``usage.prompt_tokens_details.cached_tokens`` of every answer.
        reasoning_tokens: ``usage.completion_tokens_details.reasoning_tokens``.
        stream_usage: when False, streams never carry usage, whatever the request asks
            (like servers that ignore ``stream_options``).
        max_recorded_requests: how many recent requests ``requests`` keeps (None: all).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "fake-model",
        rules: Sequence[Rule] | None = None,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        stream_usage: bool = True,
        max_recorded_requests: int | None = 10_000,
    ) -> None:
        self.host, self.port, self.model = host, port, model
        self.brain = Brain(rules or ())
        self.cached_tokens, self.reasoning_tokens = cached_tokens, reasoning_tokens
        self.stream_usage = stream_usage
        self.wires: list[WireFormat] = [OpenAIWire()]
        self._faults = FaultQueue()
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded_requests)
        self._lock = threading.Lock()
        self._sequence = 0
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> str:
        """Bind and serve in a daemon thread; return ``base_url``. Idempotent."""
        if self._httpd is None:
            httpd = _HTTPServer((self.host, self.port), _Handler)
            httpd.owner = self
            self.port = httpd.server_address[1]
            self._httpd = httpd
            self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                            name=f"fake-llm-{self.port}", daemon=True)
            self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving, close every connection and join the thread. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if thread is not None:
            thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://host:port`` (no path)."""
        if self._httpd is None:
            raise UsageError("FakeLLMServer is not started: call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style API root ``http://host:port/v1``."""
        return self.url + "/v1"

    # -- test controls -------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far (a copy), oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def add_rule(self, rule: Rule) -> None:
        """Add a user rule (tried after earlier ones, before the built-in rules)."""
        self.brain.add_rule(rule)

    def inject_fault(self, fault: Fault) -> None:
        """Queue ``fault`` for the next ``fault.count`` requests (after faults queued earlier)."""
        self._faults.push(fault)

    def reset_faults(self) -> None:
        """Drop every queued fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Fault uses still queued."""
        return len(self._faults)

    # -- serving (handler threads) -------------------------------------------------
    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _serve(self, handler: _Handler, method: str) -> None:
        path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        recorded = RecordedRequest(
            method=method, path=path, headers={k.lower(): v for k, v in handler.headers.items()},
            body=body, json=parsed if isinstance(parsed, dict) else {},
        )
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
            self._requests.append(recorded)
        wire = self.wires[0]
        try:
            header = handler.headers.get(FAULT_HEADER)
            fault = parse_fault_header(header) if header else self._faults.take()
        except InvalidArgumentError as exc:
            handler.send(wire.error(400, str(exc)))
            return
        if fault is not None and fault.kind == "disconnect":
            handler.drop()
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        if fault is not None and fault.kind == "http_error":
            message = fault.message or f"fake server: injected HTTP {fault.status} error"
            handler.send(wire.error(fault.status, message, retry_after_s=fault.retry_after_s))
            return
        handler.send(self._dispatch(method, path, body, parsed, sequence, fault))

    def _dispatch(self, method: str, path: str, body: bytes, parsed: Any, sequence: int,
                  fault: Fault | None) -> WireReply:
        default = self.wires[0]
        if method == "GET":
            for wire in self.wires:
                reply = wire.get(path, model=self.model)
                if reply is not None:
                    return reply
            return default.error(404, f"fake server: no route for GET {path}")
        for wire in self.wires:
            if path not in wire.post_paths:
                continue
            if not isinstance(parsed, dict):
                return wire.error(400, "fake server: the request body is not a JSON object")
            call = WireCall(
                path=path, body=body, json=parsed, brain=self.brain, model=self.model, sequence=sequence,
                fault=fault if fault is not None and fault.kind in _REPLY_FAULTS else None,
                cached_tokens=self.cached_tokens, reasoning_tokens=self.reasoning_tokens,
                stream_usage=self.stream_usage,
            )
            try:
                return wire.handle(call)
            except Exception as exc:  # a user rule raised: answer 500 rather than hang the client
                logger.debug("fake LLM server: %s handler failed", wire.name, exc_info=True)
                return wire.error(500, f"fake server: {type(exc).__name__}: {exc}")
        return default.error(404, f"fake server: no route for POST {path}")

    def __repr__(self) -> str:
        state = self.base_url if self._httpd is not None else "stopped"
        return f"FakeLLMServer({state}, model={self.model!r})"
