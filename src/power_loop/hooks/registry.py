"""AgentHooks: ordered handlers per hook point, sync or async, returning directives.

Invariants: handlers run by ascending ``order``, then registration order; the last
directive set (returned or assigned to ``ctx.directive``) wins; a raising handler's
exception propagates unchanged (the engine aborts the send with it). ``has(point)`` is
O(1) so the engine builds no context object for a point nobody listens to.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any, TypeVar

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.hooks import BaseHookCtx, HookDirective, HookPoint

HookHandler = Callable[[Any], Any]
CtxT = TypeVar("CtxT", bound=BaseHookCtx)

_ORDER = itertools.count()


def _point(hook_point: HookPoint | str) -> HookPoint:
    try:
        return HookPoint(hook_point)
    except ValueError:
        known = ", ".join(p.value for p in HookPoint)
        raise InvalidArgumentError(f"unknown hook point {hook_point!r}; known: {known}") from None


class AgentHooks:
    """A registry of lifecycle hook handlers.

    Example:
        >>> hooks = AgentHooks()
        >>> def no_shell(ctx):
        ...     if ctx.tool_name == "bash":
        ...         ctx.output = "shell disabled"
        ...         return HookDirective.SKIP
        >>> hooks.register(HookPoint.TOOL_BEFORE, no_shell)
    """

    def __init__(self) -> None:
        self._handlers: dict[HookPoint, list[tuple[int, int, HookHandler, bool]]] = {}

    def register(self, hook_point: HookPoint | str, handler: HookHandler, *, order: int = 0) -> None:
        """Add ``handler`` at ``hook_point``; lower ``order`` runs first."""
        if not callable(handler):
            raise InvalidArgumentError(f"hook handler must be callable, got {type(handler).__name__}")
        point = _point(hook_point)
        is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
        )
        entries = self._handlers.setdefault(point, [])
        entries.append((order, next(_ORDER), handler, is_async))
        entries.sort(key=lambda e: (e[0], e[1]))

    def unregister(self, hook_point: HookPoint | str, handler: HookHandler) -> bool:
        """Remove ``handler`` from ``hook_point``; return whether it was registered."""
        point = _point(hook_point)
        entries = self._handlers.get(point, [])
        # ``==`` as well as ``is``: ``obj.method`` builds a new bound method per access.
        kept = [e for e in entries if not (e[2] is handler or e[2] == handler)]
        if len(kept) == len(entries):
            return False
        if kept:
            self._handlers[point] = kept
        else:
            self._handlers.pop(point, None)
        return True

    def clear(self, hook_point: HookPoint | str | None = None) -> None:
        """Remove every handler (of one point, or of all)."""
        if hook_point is None:
            self._handlers.clear()
        else:
            self._handlers.pop(_point(hook_point), None)

    def has(self, hook_point: HookPoint | str) -> bool:
        """True when at least one handler listens at ``hook_point``."""
        if hook_point.__class__ is not HookPoint:
            hook_point = _point(hook_point)
        return hook_point in self._handlers

    def handlers(self, hook_point: HookPoint | str) -> list[HookHandler]:
        """The handlers at a point, in the order they run."""
        return [e[2] for e in self._handlers.get(_point(hook_point), [])]

    async def run(self, hook_point: HookPoint | str, ctx: CtxT) -> HookDirective:
        """Run every handler at ``hook_point`` on ``ctx``; return the final directive.

        Raises:
            InvalidArgumentError: ``invalid_argument`` for an unknown hook point or a
                handler returning something other than None or a ``HookDirective``.
            Exception: whatever a handler raises, unchanged.
        """
        if hook_point.__class__ is not HookPoint:
            hook_point = _point(hook_point)
        for _order, _seq, handler, is_async in tuple(self._handlers.get(hook_point, ())):
            result = handler(ctx)
            if is_async or inspect.isawaitable(result):
                result = await result
            if result is not None:
                ctx.directive = _directive(result, handler, hook_point)
        return ctx.directive


def _directive(result: Any, handler: HookHandler, point: HookPoint) -> HookDirective:
    try:
        return HookDirective(result)
    except ValueError:
        known = ", ".join(d.value for d in HookDirective)
        raise InvalidArgumentError(
            f"hook handler {handler!r} at {point.value} returned {result!r}: return None or a"
            f" HookDirective ({known})") from None
