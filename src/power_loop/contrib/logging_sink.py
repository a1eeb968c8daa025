"""Structured event logging: one JSON object per event on a stdlib logger.

Records go to ``logging.getLogger("power_loop.events")`` by default; the library never
configures handlers, so nothing appears until the host configures logging. Long strings
are truncated and values under secret-looking keys become ``"***"``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.events import AgentEvent, AgentEventType
from power_loop.contrib._redact import redact_keys as _redact_keys
from power_loop.contrib._redact import shape
from power_loop.events.bus import AgentEventBus


class LoggingSink:
    """The subscriber ``attach_logging_sink`` installs; ``detach()`` removes it."""

    def __init__(self, bus: AgentEventBus, *, logger: logging.Logger, level: int, max_field_len: int,
                 secret_keys: frozenset[str]) -> None:
        self.bus = bus
        self.logger = logger
        self.level = level
        self.max_field_len = max_field_len
        self.secret_keys = secret_keys

    def __call__(self, event: AgentEvent) -> None:
        if not self.logger.isEnabledFor(self.level):
            return
        record: dict[str, Any] = {"event": event.type.value, "seq": event.seq, "ts": event.ts,
                                  "session_id": event.session_id}
        if event.round_index is not None:
            record["round_index"] = event.round_index
        if event.source is not None:
            record["source"] = event.source
        record["payload"] = shape(event.payload, max_len=self.max_field_len, secret_keys=self.secret_keys)
        self.logger.log(self.level, "%s", json.dumps(record, ensure_ascii=False, default=str))

    def detach(self) -> None:
        """Stop logging; idempotent."""
        self.bus.unsubscribe(self)


def _event_types(events: Iterable[AgentEventType | str] | AgentEventType | str) -> list[AgentEventType]:
    if isinstance(events, str):  # one AgentEventType (a str enum) or its value
        events = (events,)
    types: list[AgentEventType] = []
    unknown: list[str] = []
    for item in events:
        try:
            etype = AgentEventType(item)
        except ValueError:
            unknown.append(repr(item))
            continue
        if etype not in types:
            types.append(etype)
    if unknown:
        raise InvalidArgumentError(f"unknown event type(s) in events: {', '.join(unknown)}")
    return types


def attach_logging_sink(
    bus: AgentEventBus,
    *,
    logger: logging.Logger | None = None,
    level: int = logging.INFO,
    events: Iterable[AgentEventType] | None = None,
    max_field_len: int = 500,
    redact_keys: Iterable[str] | None = None,
) -> LoggingSink:
    """Log every event (or only ``events``) as one JSON line.

    Args:
        bus: The bus to subscribe to.
        logger: Where records go; default ``logging.getLogger("power_loop.events")``.
        level: The level of every record.
        events: Only these types (each logged once, however often listed); None = all.
        max_field_len: Longer strings are cut to this many characters plus a marker.
        redact_keys: Secret keys replacing the defaults; ``()`` disables redaction.

    Returns:
        The installed sink; ``sink.detach()`` unsubscribes it.

    Raises:
        InvalidArgumentError: ``invalid_argument`` for an unknown event type or a
            negative ``max_field_len``.

    Example:
        >>> bus = AgentEventBus(suppress_subscriber_errors=True)
        >>> sink = attach_logging_sink(bus, events={AgentEventType.USAGE_UPDATED})
    """
    if isinstance(max_field_len, bool) or not isinstance(max_field_len, int) or max_field_len < 0:
        raise InvalidArgumentError(f"max_field_len must be an integer >= 0, got {max_field_len!r}")
    types = None if events is None else _event_types(events)
    sink = LoggingSink(bus, logger=logger or logging.getLogger("power_loop.events"), level=level,
                       max_field_len=max_field_len, secret_keys=_redact_keys(redact_keys))
    if types is None:
        bus.subscribe(None, sink)
    else:
        for etype in types:
            bus.subscribe(etype, sink)
    return sink
