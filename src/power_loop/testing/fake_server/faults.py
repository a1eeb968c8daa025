"""Injected failures of the fake server: what goes wrong, and for how many requests.

A ``Fault`` is queued with ``FakeLLMServer.inject_fault`` (first in, first out; each
request consumes one use, ``count`` uses in all) or asked for by one request with the
header ``X-Fake-Fault: <kind>[;status=429][;delay_s=2][;retry_after_s=1]`` so that
another process can trigger it. A header fault applies to its request only and leaves
the queue alone.

Kinds:
- ``http_error``: answer ``status`` (default 500) with the wire format's error body;
  a ``retry_after_s`` adds ``Retry-After`` (and ``retry-after-ms``) headers.
- ``slow``: sleep ``delay_s`` before answering normally.
- ``slow_stream``: answer normally, but write a streamed answer one event at a time,
  sleeping ``delay_s`` before each (a plain answer is sent at once).
- ``malformed_tool_json``: the reply calls a tool with arguments that are not JSON.
- ``empty_choices``: a completion without choices.
- ``truncated_stream``: a streamed answer stops mid-way: no finish reason, no ``[DONE]``
  (a non-streamed request gets a body cut in the middle of its JSON).
- ``disconnect``: the socket is closed without any response.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import KW_ONLY, dataclass
from typing import Literal, get_args

from power_loop.contracts.errors import InvalidArgumentError

__all__ = ["FAULT_HEADER", "Fault", "FaultKind", "FaultQueue", "parse_fault_header"]

FaultKind = Literal[
    "http_error", "slow", "slow_stream", "malformed_tool_json", "empty_choices", "truncated_stream",
    "disconnect",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
FAULT_HEADER = "X-Fake-Fault"


@dataclass(frozen=True, slots=True)
class Fault:
    """One kind of failure, for the next ``count`` requests.

    Example:
        >>> Fault("http_error", status=429, retry_after_s=1.5).kind
        'http_error'
    """

    kind: FaultKind
    _: KW_ONLY
    count: int = 1
    status: int = 500
    """HTTP status of ``http_error``."""
    delay_s: float = 0.0
    """Sleep of ``slow`` (before the answer) and ``slow_stream`` (before each event)."""
    retry_after_s: float | None = None
    """``Retry-After`` of ``http_error``."""
    message: str | None = None
    """Error message of ``http_error`` (a default names the status)."""

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in FAULT_KINDS:
            problems.append(f"unknown fault kind {self.kind!r}: use one of {', '.join(FAULT_KINDS)}")
        if self.count < 1:
            problems.append(f"count must be >= 1, not {self.count}")
        if not 400 <= self.status <= 599:
            problems.append(f"status must be an HTTP error status (400-599), not {self.status}")
        if self.delay_s < 0:
            problems.append(f"delay_s must be >= 0, not {self.delay_s}")
        if problems:
            raise InvalidArgumentError("invalid Fault: " + "; ".join(problems))


def parse_fault_header(value: str) -> Fault:
    """Parse ``<kind>[;status=429][;delay_s=2][;retry_after_s=1][;message=...]``.

    Raises:
        InvalidArgumentError: (``invalid_argument``) an unknown kind or option.
    """
    kind, *options = (part.strip() for part in value.split(";"))
    status, delay_s, retry_after_s, message = 500, 0.0, None, None
    for option in options:
        key, _, raw = option.partition("=")
        key = key.strip()
        try:
            if key == "status":
                status = int(raw)
            elif key == "delay_s":
                delay_s = float(raw)
            elif key == "retry_after_s":
                retry_after_s = float(raw)
            elif key == "message":
                message = raw.strip()
            elif key:
                raise InvalidArgumentError(f"unknown {FAULT_HEADER} option {key!r}")
        except ValueError as exc:
            raise InvalidArgumentError(f"bad {FAULT_HEADER} option {option!r}: {exc}") from exc
    return Fault(kind, status=status, delay_s=delay_s, retry_after_s=retry_after_s,  # type: ignore[arg-type]  # validated by Fault
                 message=message)


class FaultQueue:
    """Thread-safe FIFO of fault uses."""

    def __init__(self) -> None:
        self._queue: deque[tuple[Fault, int]] = deque()
        self._lock = threading.Lock()

    def push(self, fault: Fault) -> None:
        """Queue ``fault`` for its ``count`` next requests (after those queued before)."""
        with self._lock:
            self._queue.append((fault, fault.count))

    def take(self) -> Fault | None:
        """Consume one use of the oldest fault, if any."""
        with self._lock:
            if not self._queue:
                return None
            fault, left = self._queue[0]
            if left <= 1:
                self._queue.popleft()
            else:
                self._queue[0] = (fault, left - 1)
            return fault

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(left for _, left in self._queue)
