"""``FakeLLMServer``: a deterministic LLM provider over HTTP, in a background thread.

Standard library only (``http.server.ThreadingHTTPServer``). It answers with the
``Brain`` of ``rules.py`` through a ``WireFormat`` chosen by path (``openai_wire.py``:
``/v1/chat/completions``; ``anthropic_wire.py``: ``/v1/messages``), records every
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
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError, UsageError
from power_loop.contracts.json import JSONObject
from power_loop.testing.fake_server.anthropic_wire import AnthropicWire
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
    request_queue_size = 1024
    """The listen backlog (socketserver's default is 5): with a small one, a burst of concurrent
    clients overflows the accept queue and a connection the client believes open can sit
    unanswered until its read times out."""
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

    def send(self, reply: WireReply, *, event_delay_s: float = 0.0) -> None:
        head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}",
                f"Content-Type: {reply.content_type}", f"Content-Length: {len(reply.body)}"]
        head.extend(f"{name}: {value}" for name, value in reply.headers)
        head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if event_delay_s <= 0 or not reply.content_type.startswith("text/event-stream"):
            self.wfile.write(head_bytes + reply.body)
            return
        self.wfile.write(head_bytes)
        self.wfile.flush()
        for event in reply.body.split(b"\n\n"):
            if event:
                time.sleep(event_delay_s)
                self.wfile.write(event + b"\n\n")
                self.wfile.flush()

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
        stream_usage: when False, OpenAI streams never carry usage, whatever the request
            asks (like servers that ignore ``stream_options``).
        cache_creation_tokens: Anthropic ``usage.cache_creation_input_tokens`` of every answer.
        repeat_stream_tool_ids: OpenAI streamed tool-call chunks repeat the call's id and
            name on every chunk (as llama.cpp and some gateways do).
        response_formats: the OpenAI ``response_format`` types accepted; a request with
            another type gets a 400 naming it (None accepts all).
        accepted_models: model names served; a request naming another gets a 404 in the
            wire format's error shape (None accepts any name).
        stream_chunk_chars: streamed text arrives in deltas of this many characters
            (about one token at 4; for benchmarks), instead of a handful of pieces.
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
        cache_creation_tokens: int = 0,
        repeat_stream_tool_ids: bool = False,
        response_formats: Collection[str] | None = None,
        accepted_models: Collection[str] | None = None,
        stream_chunk_chars: int | None = None,
        max_recorded_requests: int | None = 10_000,
    ) -> None:
        self.host, self.port, self.model = host, port, model
        self.brain = Brain(rules or ())
        self.cached_tokens, self.reasoning_tokens = cached_tokens, reasoning_tokens
        self.stream_usage = stream_usage
        self.cache_creation_tokens = cache_creation_tokens
        self.repeat_stream_tool_ids = repeat_stream_tool_ids
        self.response_formats = None if response_formats is None else frozenset(response_formats)
        self.accepted_models = None if accepted_models is None else frozenset(accepted_models)
        if stream_chunk_chars is not None and stream_chunk_chars < 1:
            raise InvalidArgumentError(f"stream_chunk_chars must be >= 1 or None, not {stream_chunk_chars!r}")
        self.stream_chunk_chars = stream_chunk_chars
        self.wires: list[WireFormat] = [OpenAIWire(), AnthropicWire()]
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

    @property
    def anthropic_base_url(self) -> str:
        """The Anthropic-style API root ``http://host:port`` (the SDK adds ``/v1/messages``)."""
        return self.url

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
        wire = self._wire_for(path)
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
        delay = fault.delay_s if fault is not None and fault.kind == "slow_stream" else 0.0
        handler.send(self._dispatch(method, path, body, parsed, sequence, fault), event_delay_s=delay)

    def _wire_for(self, path: str) -> WireFormat:
        return next((w for w in self.wires if path in w.post_paths), self.wires[0])

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
            model = parsed.get("model")
            if self.accepted_models is not None and model not in self.accepted_models:
                return wire.error(404, f"model {model!r} does not exist or you do not have access to it"
                                       f" (this server serves {', '.join(sorted(self.accepted_models))})")
            call = WireCall(
                path=path, body=body, json=parsed, brain=self.brain, model=self.model, sequence=sequence,
                fault=fault if fault is not None and fault.kind in _REPLY_FAULTS else None,
                cached_tokens=self.cached_tokens, reasoning_tokens=self.reasoning_tokens,
                stream_usage=self.stream_usage, cache_creation_tokens=self.cache_creation_tokens,
                repeat_stream_tool_ids=self.repeat_stream_tool_ids, response_formats=self.response_formats,
                stream_chunk_chars=self.stream_chunk_chars,
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
