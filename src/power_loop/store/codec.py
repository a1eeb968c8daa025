"""How values are stored: strict JSON text, and epoch-millisecond timestamps.

Invariants: what the store writes is standard JSON (no ``NaN``/``Infinity``, which
PostgreSQL and MySQL reject), UTF-8 kept as is (``ensure_ascii=False``) and compact;
reading it back yields the value a cold load sees, so callers that keep an in-memory
copy (the session window) hold exactly what a fresh process would load.
"""

from __future__ import annotations

import json
import time
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError

# One encoder for the process: json.dumps with non-default options would build a new
# encoder on every call, and this is on the path of every appended message.
encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
"""``value -> str``; raises ``TypeError``/``ValueError`` for values JSON cannot hold."""

decode_json = json.loads

EMPTY_OBJECT = "{}"


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (the unit of every row timestamp)."""
    return time.time_ns() // 1_000_000


def json_problem(what: str, value: Any) -> str | None:
    """A message naming why ``value`` cannot be stored as JSON — not JSON-serialisable, or
    holding text UTF-8 cannot encode (a lone surrogate) — or ``None`` if it can."""
    try:
        encode_json(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{what} holds text UTF-8 cannot encode ({exc.reason}: {exc.object[exc.start:exc.end]!r})"
    except (TypeError, ValueError) as exc:
        return f"{what} is not JSON-serialisable ({exc})"
    return None


def encode_object(what: str, value: Any) -> str:
    """Encode a JSON object (a ``dict``) argument.

    Raises:
        InvalidArgumentError: ``invalid_argument`` — not a dict, or not JSON-serialisable.
    """
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{what} must be a dict (a JSON object), got {type(value).__name__}")
    if not value:
        return EMPTY_OBJECT
    try:
        return encode_json(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{what} is not JSON-serialisable ({exc})") from exc


def decode_object(text: str | None) -> dict[str, Any]:
    """Decode a stored JSON object column (``"{}"`` without parsing)."""
    if not text or text == EMPTY_OBJECT:
        return {}
    value: dict[str, Any] = decode_json(text)
    return value


def storable(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (UTF-8 cannot hold one) written
    as a ``\\udXXX`` escape; ``value`` itself when it has none (the usual case, one check).

    For text from outside the caller's control — tool outputs, model replies — that
    must be stored as it came: ``os.fsdecode`` of a non-UTF-8 file name, or a model's
    ``"\\ud83d"`` escape, would otherwise fail the write (and a resume, every time).
    """
    if type(value) is str:
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value

