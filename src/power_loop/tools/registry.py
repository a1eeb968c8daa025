"""ToolRegistry: the named tools a loop may offer, each a definition bound to a handler.

Invariants:
    * A registered definition has a valid name (``[A-Za-z0-9_.:-]{1,128}``) and a valid
      JSON Schema for an arguments object; bad ones are refused at ``register`` with every
      problem named, and the registry is left unchanged.
    * Names keep registration order (``overwrite`` keeps a tool's place).
    * ``version`` changes on every register/unregister and is drawn from one process-wide
      counter, so ``version`` alone identifies a registry state: no two states of any two
      registries share it. ``to_openai_tools()`` is cached per version.
    * ``invoke``/``invoke_async`` validate first: a handler only ever sees arguments that
      satisfy its schema, passed as keyword arguments; its return value comes back unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, overload

from power_loop.contracts.errors import (
    AsyncToolInSyncContext,
    ToolDefinitionError,
    ToolNotFound,
    ToolValidationError,
)
from power_loop.contracts.json import JSONObject
from power_loop.tools.definition import (
    TOOL_ATTRIBUTE,
    RegisteredTool,
    ToolDefinition,
    ToolHandler,
    ToolProjector,
    definition_from_function,
    is_async_callable,
)

__all__ = ["TOOL_NAME_PATTERN", "ToolRegistry"]

F = TypeVar("F", bound=Callable[..., Any])

TOOL_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
"""Tool names the registry accepts (``fullmatch``)."""

_VERSIONS = itertools.count(1)


class ToolRegistry:
    """A mutable, ordered set of tools; cheap to query on every round.

    Example:
        >>> registry = ToolRegistry()
        >>> @registry.tool
        ... def greet(name: str) -> str:
        ...     '''Say hello.'''
        ...     return f"hello {name}"
        >>> registry.invoke("greet", {"name": "Ada"})
        'hello Ada'
        >>> registry.validate("greet", {})
        ["missing required parameter 'name'"]
    """

    __slots__ = ("_lock", "_openai", "_tools", "_version")

    def __init__(self) -> None:
        self._tools: dict[str, RegisteredTool] = {}
        self._lock = threading.Lock()
        self._version = next(_VERSIONS)
        self._openai: tuple[int, list[JSONObject]] | None = None

    # -- mutation ------------------------------------------------------------------

    def register(self, definition: ToolDefinition, handler: ToolHandler, *, overwrite: bool = False) -> None:
        """Add a tool.

        Args:
            definition: The tool's name, description and schema.
            handler: Called as ``handler(**args)``; sync or async.
            overwrite: Replace a tool of the same name (keeping its position).

        Raises:
            ToolDefinitionError: (``tool.invalid_definition``) a bad name, description,
                schema or handler (every problem named), or a duplicate name without
                ``overwrite=True``.
        """
        self._add(
            RegisteredTool(definition=definition, handler=handler, is_async=is_async_callable(handler)),
            overwrite=overwrite,
        )

    def _add(self, entry: RegisteredTool, *, overwrite: bool) -> None:
        _check_registration(entry)
        with self._lock:
            name = entry.definition.name
            if name in self._tools and not overwrite:
                raise ToolDefinitionError(
                    f"tool {name!r} is already registered: pass overwrite=True to replace it"
                )
            self._tools[name] = entry
            self._bump()

    def register_function(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        max_output_chars: int | None = None,
        project: ToolProjector | None = None,
        overwrite: bool = False,
    ) -> ToolDefinition:
        """Register a typed function; its schema comes from its signature and docstring.

        A function marked with :func:`tool` uses the attached definition (keyword
        arguments given here override its fields). Arguments reach the function converted
        to its annotated Enum, dataclass, tuple and set types.

        Returns:
            The registered definition.

        Raises:
            ToolDefinitionError: (``tool.invalid_definition``) as for :meth:`register`.
        """
        from power_loop.tools.schema import argument_converter

        marked = getattr(fn, TOOL_ATTRIBUTE, None)
        if isinstance(marked, ToolDefinition):
            overrides: dict[str, Any] = {  # Any: values of several ToolDefinition fields
                "name": name,
                "description": description,
                "timeout_s": timeout_s,
                "max_output_chars": max_output_chars,
                "project": project,
            }
            definition = dataclasses.replace(marked, **{k: v for k, v in overrides.items() if v is not None})
        else:
            definition = definition_from_function(
                fn,
                name=name,
                description=description,
                timeout_s=timeout_s,
                max_output_chars=max_output_chars,
                project=project,
            )
        entry = RegisteredTool(
            definition=definition, handler=fn, is_async=is_async_callable(fn), convert=argument_converter(fn)
        )
        self._add(entry, overwrite=overwrite)
        return definition

    @classmethod
    def from_functions(cls, *fns: Callable[..., Any]) -> ToolRegistry:
        """A registry of typed functions (marked with :func:`tool` or plain)."""
        registry = cls()
        for fn in fns:
            registry.register_function(fn)
        return registry

    @overload
    def tool(self, fn: F, /) -> F: ...
    @overload
    def tool(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        max_output_chars: int | None = None,
        project: ToolProjector | None = None,
        overwrite: bool = False,
    ) -> Callable[[F], F]: ...
    def tool(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        max_output_chars: int | None = None,
        project: ToolProjector | None = None,
        overwrite: bool = False,
    ) -> F | Callable[[F], F]:
        """Decorator registering a typed function: ``@registry.tool`` or ``@registry.tool(name=…)``.

        Returns the function unchanged.

        Raises:
            ToolDefinitionError: (``tool.invalid_definition``) as for :meth:`register_function`.
        """

        def add(f: F) -> F:
            self.register_function(
                f,
                name=name,
                description=description,
                timeout_s=timeout_s,
                max_output_chars=max_output_chars,
                project=project,
                overwrite=overwrite,
            )
            return f

        return add(fn) if fn is not None else add

    def unregister(self, name: str) -> bool:
        """Remove a tool; True if it was registered."""
        with self._lock:
            if self._tools.pop(name, None) is None:
                return False
            self._bump()
            return True

    def _bump(self) -> None:
        self._version = next(_VERSIONS)
        self._openai = None

    # -- queries -------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes on every register/unregister; unique across all registries of the process."""
        return self._version

    def has(self, name: str) -> bool:
        """Whether a tool of this name is registered."""
        return name in self._tools

    def get(self, name: str) -> RegisteredTool | None:
        """The registered tool of this name, or None."""
        return self._tools.get(name)

    def require(self, name: str) -> RegisteredTool:
        """The registered tool of this name.

        Raises:
            ToolNotFound: (``tool.not_found``) no such tool.
        """
        entry = self._tools.get(name)
        if entry is None:
            raise ToolNotFound(name, known=list(self._tools))
        return entry

    def names(self) -> list[str]:
        """Tool names in registration order."""
        return list(self._tools)

    def definitions(self) -> list[ToolDefinition]:
        """Tool definitions in registration order."""
        return [entry.definition for entry in self._tools.values()]

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """A new registry with these tools (in the order given), sharing their handlers.

        Raises:
            ToolNotFound: (``tool.not_found``) a name is not registered; the message lists
                every unknown name. ``.tool_name`` is the first.
        """
        wanted = list(dict.fromkeys([names] if isinstance(names, str) else names))
        tools = dict(self._tools)
        unknown = [n for n in wanted if n not in tools]
        if unknown:
            error = ToolNotFound(unknown[0], known=list(tools))
            if len(unknown) > 1:
                error.args = (f"unknown tools {unknown!r}; registered tools: {', '.join(tools) or '(none)'}",)
            raise error
        child = ToolRegistry()
        child._tools = {n: tools[n] for n in wanted}
        return child

    def to_openai_tools(self) -> list[JSONObject]:
        """Every tool as an OpenAI tool dict, in registration order.

        The list is new on each call (cheap: it is cached per :attr:`version`); the dicts
        inside are shared and must be treated as read-only.
        """
        cached = self._openai
        version = self._version
        if cached is None or cached[0] != version:
            cached = (version, [entry.definition.to_openai_tool() for entry in self._tools.values()])
            self._openai = cached
        return list(cached[1])

    def validate(self, name: str, args: Mapping[str, Any] | object) -> list[str]:
        """Every problem of ``args`` against the tool's schema; [] if they are valid.

        Raises:
            ToolNotFound: (``tool.not_found``) no such tool.
        """
        return self.require(name).definition.validate(args)

    def _checked(self, name: str, args: Mapping[str, Any] | None) -> tuple[RegisteredTool, Mapping[str, Any]]:
        entry = self.require(name)
        payload: Mapping[str, Any] = {} if args is None else args
        problems = entry.definition.validate(dict(payload) if isinstance(payload, Mapping) else payload)
        if problems:
            raise ToolValidationError(name, problems)
        return entry, payload

    def invoke(self, name: str, args: Mapping[str, Any] | None = None) -> Any:  # Any: the handler's value
        """Validate and call a sync tool in this thread; return the handler's value unchanged.

        Raises:
            ToolNotFound: (``tool.not_found``) no such tool.
            AsyncToolInSyncContext: (``tool.async_in_sync``) the handler is async.
            ToolValidationError: (``tool.invalid_args``) with every problem in ``.problems``.
        """
        if self.require(name).is_async:
            raise AsyncToolInSyncContext(
                f"tool {name!r} has an async handler: use 'await registry.invoke_async(...)'"
            )
        entry, payload = self._checked(name, args)
        return entry.call(payload)

    async def invoke_async(self, name: str, args: Mapping[str, Any] | None = None) -> Any:  # Any: as invoke
        """Validate and run a tool: async handlers are awaited, sync ones run in a worker
        thread with a copy of the caller's ``contextvars``.

        Raises:
            ToolNotFound: (``tool.not_found``) no such tool.
            ToolValidationError: (``tool.invalid_args``) with every problem in ``.problems``.
        """
        entry, payload = self._checked(name, args)
        return await entry.call_async(payload)

    # -- container protocol --------------------------------------------------------

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._tools))

    def __repr__(self) -> str:
        return f"ToolRegistry({', '.join(self._tools)})"


def _check_registration(entry: RegisteredTool) -> None:
    """Raise ToolDefinitionError naming every problem of a tool about to be registered."""
    from power_loop.tools.validation import schema_definition_problems

    definition = entry.definition
    if not isinstance(definition, ToolDefinition):
        raise ToolDefinitionError(f"expected a ToolDefinition, got {type(definition).__name__}")
    name = definition.name
    problems: list[str] = []
    if not isinstance(name, str) or not TOOL_NAME_PATTERN.fullmatch(name):
        problems.append(f"name {name!r} must be 1-128 letters, digits, '_', '.', ':' or '-'")
    if not isinstance(definition.description, str):
        problems.append(f"description must be a str, got {type(definition.description).__name__}")
    bad_required = [p for p in definition.required_params if not isinstance(p, str)]
    if bad_required:
        problems.append(f"required_params must be names (str), got {bad_required!r}")
    limits = (("timeout_s", definition.timeout_s), ("max_output_chars", definition.max_output_chars))
    for label, value in limits:
        positive = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        if value is not None and not positive:
            problems.append(f"{label} must be a positive number or None, got {value!r}")
    if definition.project is not None and not callable(definition.project):
        problems.append(f"project must be callable or None, got {type(definition.project).__name__}")
    if not callable(entry.handler):
        problems.append(f"handler must be callable, got {type(entry.handler).__name__}")
    problems.extend(f"input_schema: {p}" for p in schema_definition_problems(definition.input_schema))
    if problems:
        raise ToolDefinitionError(f"cannot register tool {name!r}: " + "; ".join(problems))
    definition._compile(check=False)  # compile now, so the first call does not pay for it
