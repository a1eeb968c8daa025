"""Tool definitions: what the model is told about a tool, and a tool bound to its handler.

A ``ToolDefinition`` is a value: name, description, JSON Schema of the arguments and a few
execution options. The OpenAI tool dict and the compiled argument validator are derived
from it once, on first use, and cached on the instance, because the engine asks for them
on every round.

Invariants:
    * The required arguments are ``input_schema["required"]`` followed by the
      ``required_params`` not already listed, without duplicates; the OpenAI
      ``parameters`` and argument validation both use this merged schema.
    * ``input_schema`` is treated as immutable once the definition exists: the caches are
      never invalidated, so build a new definition (``dataclasses.replace``) to change it.
    * Definitions are checked (name, schema) when registered, not when built, so adapters
      can construct them freely and report every problem at once at ``register``.

``@tool`` derives a definition from a typed function (``schema.function_schema``) and
attaches it to the function, which a registry registers later.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from power_loop.contracts.json import JSONObject

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = [
    "TOOL_ATTRIBUTE",
    "ArgumentConverter",
    "RegisteredTool",
    "ToolDefinition",
    "ToolHandler",
    "ToolProjector",
    "definition_from_function",
    "tool",
]

F = TypeVar("F", bound=Callable[..., Any])

TOOL_ATTRIBUTE = "__power_loop_tool__"
"""The attribute :func:`tool` sets on a function: its ToolDefinition."""

# Handlers are user callables of any signature returning any value; the registry calls
# them with the validated arguments as keyword arguments.
ToolHandler = Callable[..., Any]
"""A tool implementation: ``handler(**args)``, sync or ``async``."""

ToolProjector = Callable[[Mapping[str, Any], str | None], JSONObject | str]
"""``project(args, result)``: a compact summary of one call (``ProjectedRepresentation``)."""

ArgumentConverter = Callable[[JSONObject], JSONObject]
"""Turns validated JSON arguments into the Python values a typed handler expects."""


def _empty_object_schema() -> JSONObject:
    return {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDefinition:
    """Everything the model and the engine need to know about one tool.

    Example:
        >>> d = ToolDefinition(
        ...     name="weather",
        ...     description="Current weather for a city.",
        ...     input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        ...     required_params=("city",),
        ... )
        >>> d.to_openai_tool()["function"]["parameters"]["required"]
        ['city']
    """

    name: str
    """Unique name within a registry: ``[A-Za-z0-9_.:-]{1,128}``."""
    description: str
    """What the tool does, shown to the model."""
    input_schema: JSONObject = field(default_factory=_empty_object_schema)
    """JSON Schema of the arguments object (Draft 2020-12 unless ``$schema`` says otherwise)."""
    required_params: tuple[str, ...] = ()
    """Extra required argument names, merged with ``input_schema["required"]``."""
    project: ToolProjector | None = None
    """``project(args, result)`` summarises one call for ``ProjectedRepresentation``."""
    timeout_s: float | None = None
    """Execution timeout of this tool; None uses the engine's default."""
    max_output_chars: int | None = None
    """Result size cap of this tool; None uses the engine's default (50 000)."""

    _openai_tool: JSONObject | None = field(default=None, init=False, repr=False, compare=False)
    _validator: Validator | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Accept any sequence of names (a list is the common mistake) but store a tuple so
        # the value stays immutable and hashable-in-spirit.
        if not isinstance(self.required_params, tuple):
            object.__setattr__(self, "required_params", tuple(self.required_params))

    def __reduce__(self) -> tuple[Callable[..., ToolDefinition], tuple[dict[str, Any]]]:
        # Pickle and copy the public fields only: the caches hold a compiled validator that
        # need not pickle, and are rebuilt lazily. (__reduce__, because a frozen slots
        # dataclass gets generated __getstate__/__setstate__ on Python 3.10.)
        return _rebuild_definition, ({f: getattr(self, f) for f in _PUBLIC_FIELDS},)

    @property
    def required(self) -> tuple[str, ...]:
        """The merged required argument names: the schema's first, then ``required_params``."""
        listed = self.input_schema.get("required") if isinstance(self.input_schema, dict) else None
        names: list[str] = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
        names.extend(self.required_params)
        return tuple(dict.fromkeys(names))

    @property
    def parameters(self) -> JSONObject:
        """The effective arguments schema: ``input_schema`` with the merged ``required``.

        The returned dict is shared with the cached OpenAI tool; treat it as read-only.
        """
        params: JSONObject = self.to_openai_tool()["function"]["parameters"]
        return params

    def to_openai_tool(self) -> JSONObject:
        """Return ``{"type": "function", "function": {"name", "description", "parameters"}}``.

        Computed once per definition; the same dict is returned on every call, so treat it
        as read-only (copy it before editing).
        """
        cached = self._openai_tool
        if cached is None:
            params: JSONObject = dict(self.input_schema)
            if "type" not in params:
                params["type"] = "object"
            required = self.required
            if required:
                params["required"] = list(required)
            cached = {
                "type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": params},
            }
            object.__setattr__(self, "_openai_tool", cached)
        return cached

    def validator(self) -> Validator:
        """The compiled validator of :attr:`parameters`, built on first use and cached.

        Raises:
            ToolDefinitionError: (``tool.invalid_definition``) the schema is not valid JSON Schema.
        """
        compiled = self._validator
        return compiled if compiled is not None else self._compile(check=True)

    def _compile(self, *, check: bool) -> Validator:
        from power_loop.tools.validation import check_tool_schema, compile_validator

        if check:
            check_tool_schema(self.name, self.input_schema)
        compiled = compile_validator(self.parameters)
        object.__setattr__(self, "_validator", compiled)
        return compiled

    def validate(self, args: object) -> list[str]:
        """Every problem of ``args`` against this tool's schema, as sentences; [] if valid."""
        from power_loop.tools.validation import validate_arguments

        return validate_arguments(self.validator(), args)


_PUBLIC_FIELDS = (
    "name",
    "description",
    "input_schema",
    "required_params",
    "project",
    "timeout_s",
    "max_output_chars",
)


def _rebuild_definition(fields: dict[str, Any]) -> ToolDefinition:
    return ToolDefinition(**fields)


def is_async_callable(handler: object) -> bool:
    """Whether calling ``handler`` returns a coroutine (async functions, partials, objects)."""
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - an object's async __call__
    return call is not None and inspect.iscoroutinefunction(call)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisteredTool:
    """A definition bound to the callable that implements it.

    ``call``/``call_async`` run the handler with already validated arguments; the registry
    validates first. ``convert`` (set for typed functions registered from their signature)
    turns JSON values into Enum members, dataclasses and tuples before the call.
    """

    definition: ToolDefinition
    """What the model sees."""
    handler: ToolHandler
    """The implementation, called as ``handler(**args)``."""
    is_async: bool
    """True when ``handler`` is a coroutine function (awaited on the event loop)."""
    convert: ArgumentConverter | None = None
    """Optional argument conversion applied just before the handler runs."""

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.definition.name

    def _kwargs(self, args: Mapping[str, Any]) -> JSONObject:
        kwargs = dict(args)
        return self.convert(kwargs) if self.convert is not None else kwargs

    def call(self, args: Mapping[str, Any]) -> Any:  # Any: the handler's own return value
        """Call the handler synchronously in this thread and return its value unchanged.

        Raises:
            AsyncToolInSyncContext: (``tool.async_in_sync``) the handler is async.
        """
        from power_loop.contracts.errors import AsyncToolInSyncContext

        if self.is_async:
            raise AsyncToolInSyncContext(
                f"tool {self.name!r} has an async handler: use 'await registry.invoke_async(...)'"
            )
        result = self.handler(**self._kwargs(args))
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise AsyncToolInSyncContext(
                f"tool {self.name!r} returned an awaitable: use 'await registry.invoke_async(...)'"
            )
        return result

    async def call_async(self, args: Mapping[str, Any]) -> Any:  # Any: the handler's return value
        """Await an async handler, or run a sync one in a worker thread with this context.

        A sync handler runs on the tool worker pool, in a copy of the caller's
        ``contextvars``; if it returns an awaitable, that is awaited here.
        """
        from power_loop.tools.worker_pool import TOOL_WORKERS

        kwargs = self._kwargs(args)
        if self.is_async:
            return await self.handler(**kwargs)
        result = await TOOL_WORKERS.run(self.handler, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


def definition_from_function(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    max_output_chars: int | None = None,
    project: ToolProjector | None = None,
) -> ToolDefinition:
    """Build a ToolDefinition from a typed function (see :func:`function_schema`).

    The name defaults to the function's ``__name__``, the description to its docstring.

    Raises:
        ToolDefinitionError: (``tool.invalid_definition``) the signature cannot be a tool.
    """
    from power_loop.tools.schema import function_schema

    doc, schema = function_schema(fn)
    target = fn.func if isinstance(fn, functools.partial) else fn
    return ToolDefinition(
        name=name or str(getattr(target, "__name__", type(target).__name__)),
        description=description if description is not None else doc,
        input_schema=schema,
        timeout_s=timeout_s,
        max_output_chars=max_output_chars,
        project=project,
    )


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    max_output_chars: int | None = None,
    project: ToolProjector | None = None,
) -> Callable[[F], F]: ...
def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    max_output_chars: int | None = None,
    project: ToolProjector | None = None,
) -> F | Callable[[F], F]:
    """Mark a typed function as a tool without registering it anywhere.

    Attaches its ToolDefinition as ``fn.__power_loop_tool__`` and returns ``fn`` unchanged;
    ``ToolRegistry.register_function``/``from_functions`` register it later.

    Example:
        >>> @tool
        ... def add(a: int, b: int) -> int:
        ...     '''Add two integers.'''
        ...     return a + b
        >>> add.__power_loop_tool__.name
        'add'

    Raises:
        ToolDefinitionError: (``tool.invalid_definition``) the signature cannot be a tool.
    """

    def mark(f: F) -> F:
        definition = definition_from_function(
            f,
            name=name,
            description=description,
            timeout_s=timeout_s,
            max_output_chars=max_output_chars,
            project=project,
        )
        setattr(f, TOOL_ATTRIBUTE, definition)  # functions accept attributes; mypy cannot know F does
        return f

    return mark(fn) if fn is not None else mark
