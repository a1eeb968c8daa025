"""What both SDK-backed transports share: the raw response class, Retry-After, SSE lines.

No SDK is imported here; the transports pass their SDK module in. Invariants:
``retry_after_s`` prefers ``retry-after-ms``, then ``retry-after`` as seconds or as an
HTTP date, and never returns a negative delay; ``body_key_order`` asks an SDK resource's
own ``create()`` how it orders a request body, without sending anything.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from power_loop.contracts.errors import MissingExtraError

__all__ = ["body_key_order", "response_class", "retry_after_s"]

logger = logging.getLogger(__name__)


def response_class(sdk: Any, *, extra: str, feature: str) -> Any:
    """The HTTP response class of the HTTP library an SDK is built on (httpx or httpx2)."""
    for klass in sdk.DefaultAsyncHttpxClient.__mro__:
        if klass.__name__ == "AsyncClient":
            return sys.modules[klass.__module__.partition(".")[0]].Response
    raise MissingExtraError(extra, feature=feature, module=f"a newer {sdk.__name__}")


def retry_after_s(headers: Any) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` / ``retry-after``; None when absent."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # lazy: rare, and slow to import

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class _Captured(Exception):
    def __init__(self, body: Any) -> None:
        super().__init__("captured")
        self.body = body


async def body_key_order(
    resource: Any, create: Callable[[Any], Awaitable[Any]], *, wanted: tuple[str, ...]
) -> tuple[str, ...] | None:
    """The order in which ``create(resource)`` puts the keys of ``wanted`` in its body.

    ``resource``'s ``_post`` is replaced by a recorder that raises before any I/O, so
    pass a throwaway resource of your own. Returns None when the SDK does not behave
    as expected (the caller keeps its fallback order).
    """

    async def capture(path: str, *, body: Any = None, **kwargs: Any) -> Any:
        raise _Captured(body)

    resource._post = capture
    try:
        await create(resource)
    except _Captured as probe:
        if isinstance(probe.body, dict) and set(wanted) <= set(probe.body):
            return tuple(k for k in probe.body if k in wanted)
    except Exception:  # any SDK surprise: keep the fallback order, requests still work
        logger.debug("could not learn the SDK's body key order; using the fallback", exc_info=True)
    return None
