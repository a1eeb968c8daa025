"""Shared event-to-record shaping for sinks: truncation and secret redaction.

A key is secret when, normalised (camelCase and ``-`` become ``_``, lower case), it is
one of the secret keys or ends with ``_`` + one of them: ``OPENAI_API_KEY``, ``apiKey``,
``X-Api-Key`` and ``db_password`` are masked; ``token`` and ``prompt_tokens`` never are.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from typing import Any

DEFAULT_REDACT_KEYS = frozenset({
    "api_key", "apikey", "authorization", "password", "passwd", "secret", "client_secret",
    "access_token", "refresh_token", "id_token", "auth_token", "api_token", "bearer_token",
    "session_token", "private_key", "secret_key", "access_key", "cookie", "set_cookie", "x_api_key",
    "credentials",
})
"""Keys whose values are replaced by ``"***"``; bare ``token`` is deliberately absent
(token counts are everywhere in usage payloads)."""

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _normalise(key: str) -> str:
    return _CAMEL.sub("_", key).lower().replace("-", "_").replace(" ", "_")


def redact_keys(keys: Iterable[str] | None) -> frozenset[str]:
    """The normalised secret keys: the defaults for None, none at all for ``()``."""
    if keys is None:
        return DEFAULT_REDACT_KEYS
    if isinstance(keys, str):
        keys = (keys,)
    return frozenset(_normalise(str(k)) for k in keys)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str, secret_keys: frozenset[str]) -> bool:
    """Whether values under ``key`` are masked (see the module docstring)."""
    if not secret_keys:
        return False
    norm = _normalise(key)
    return norm in secret_keys or any(norm.endswith("_" + k) for k in secret_keys)


def shape(value: Any, *, max_len: int, secret_keys: frozenset[str], _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` with long strings cut and secret values masked."""
    if _depth > 20:
        return "…"
    if isinstance(value, str):
        return value if len(value) <= max_len else value[:max_len] + f"…[+{len(value) - max_len} chars]"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # NaN and infinities are not JSON
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if is_secret_key(key, secret_keys):
                out[key] = "***"
            else:
                out[key] = shape(v, max_len=max_len, secret_keys=secret_keys, _depth=_depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [shape(v, max_len=max_len, secret_keys=secret_keys, _depth=_depth + 1) for v in value]
    return shape(str(value), max_len=max_len, secret_keys=secret_keys, _depth=_depth + 1)
