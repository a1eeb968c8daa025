"""Shared event-to-record shaping for sinks: truncation and secret redaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DEFAULT_REDACT_KEYS = frozenset({
    "api_key", "apikey", "authorization", "password", "passwd", "secret", "client_secret",
    "access_token", "refresh_token", "id_token", "private_key", "cookie", "set-cookie", "x-api-key",
})
"""Keys whose values are replaced by ``"***"``; bare ``token`` is deliberately absent
(token counts are everywhere in usage payloads)."""


def redact_keys(keys: Iterable[str] | None) -> frozenset[str]:
    return DEFAULT_REDACT_KEYS if keys is None else frozenset(k.lower() for k in keys)


def shape(value: Any, *, max_len: int, secret_keys: frozenset[str], _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` with long strings cut and secret values masked."""
    if _depth > 20:
        return "…"
    if isinstance(value, str):
        return value if len(value) <= max_len else value[:max_len] + f"…[+{len(value) - max_len} chars]"
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if key.lower() in secret_keys:
                out[key] = "***"
            else:
                out[key] = shape(v, max_len=max_len, secret_keys=secret_keys, _depth=_depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [shape(v, max_len=max_len, secret_keys=secret_keys, _depth=_depth + 1) for v in value]
    return shape(str(value), max_len=max_len, secret_keys=secret_keys, _depth=_depth + 1)
