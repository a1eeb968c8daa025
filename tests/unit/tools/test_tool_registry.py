"""ToolRegistry: registration rules, queries, invocation and the decorators."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import enum
import functools
import threading
from typing import Any

import pytest

from power_loop.contracts.errors import (
    AsyncToolInSyncContext,
    InvalidArgumentError,
    PowerLoopError,
    ToolDefinitionError,
    ToolNotFound,
    ToolValidationError,
)
from power_loop.tools import ToolDefinition, ToolRegistry, tool

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def weather(city: str) -> str:
    return f"sunny in {city}"


def make(name: str = "weather", schema: dict[str, Any] | None = None, **kw: Any) -> ToolDefinition:
    return ToolDefinition(name=name, description="Weather.", input_schema=schema or CITY, **kw)


@pytest.fixture
def registry() -> ToolRegistry:
    r = ToolRegistry()
    r.register(make(), weather)
    return r


# -- register / unregister ----------------------------------------------------------


def test_register_and_query(registry: ToolRegistry) -> None:
    assert registry.has("weather") and "weather" in registry and len(registry) == 1
    entry = registry.get("weather")
    assert entry is not None and entry.handler is weather and entry.is_async is False
    assert entry.definition.name == "weather"
    assert registry.get("nope") is None and not registry.has("nope")
    assert registry.names() == ["weather"] == list(registry)
    assert registry.definitions() == [make()]
    assert "weather" in repr(registry)


def test_names_keep_registration_order_and_overwrite_keeps_position() -> None:
    r = ToolRegistry()
    for n in ("c", "a", "b"):
        r.register(make(n), weather)
    r.register(make("a", timeout_s=2.0), weather, overwrite=True)
    assert r.names() == ["c", "a", "b"]
    assert r.definitions()[1].timeout_s == 2.0


def test_duplicate_registration_is_refused(registry: ToolRegistry) -> None:
    with pytest.raises(ToolDefinitionError, match="overwrite=True") as info:
        registry.register(make(), weather)
    assert info.value.code == "tool.invalid_definition"
    assert isinstance(info.value, InvalidArgumentError)


@pytest.mark.parametrize("name", ["", "has space", "x" * 129, "bad/slash", "é"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ToolDefinitionError, match="name"):
        ToolRegistry().register(make(name), weather)


@pytest.mark.parametrize("name", ["a", "fs.read_file", "mcp:server-1", "A_b-9", "x" * 128])
def test_good_names_are_accepted(name: str) -> None:
    r = ToolRegistry()
    r.register(make(name), weather)
    assert r.has(name)


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "objekt"}, "'objekt' is not a JSON Schema type"),
        ({"properties": 5}, "at properties: 5 is not of type 'object'"),
        ({"type": "string"}, '"type" must be "object"'),
        ({"type": "object", "properties": {"a": {"type": "integr"}}}, "at properties/a/type"),
        ({"type": "object", "properties": {"a": {"pattern": "(["}}}, "is not a 'regex'"),
        ({"type": "object", "required": "city"}, "at required"),
        ({}, 'add "type": "object"'),
    ],
)
def test_invalid_schemas_are_refused_at_register(schema: dict[str, Any], fragment: str) -> None:
    r = ToolRegistry()
    with pytest.raises(ToolDefinitionError) as info:
        r.register(ToolDefinition(name="t", description="", input_schema=schema), weather)
    assert fragment in str(info.value)
    assert "input_schema" in str(info.value)
    assert len(r) == 0, "a refused tool leaves the registry unchanged"


def test_every_registration_problem_is_named_at_once() -> None:
    bad = ToolDefinition(
        name="bad name",
        description=3,  # type: ignore[arg-type]  # wrong on purpose
        input_schema={"type": "objekt"},
        timeout_s=-1,
        project="x",  # type: ignore[arg-type]  # wrong on purpose
    )
    with pytest.raises(ToolDefinitionError) as info:
        ToolRegistry().register(bad, "not callable")  # type: ignore[arg-type]  # wrong on purpose
    message = str(info.value)
    for fragment in (
        "name 'bad name'",
        "description must be a str",
        "timeout_s",
        "handler must be callable",
        "project must be callable",
        "objekt",
    ):
        assert fragment in message


def test_non_definition_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="expected a ToolDefinition"):
        ToolRegistry().register({"name": "x"}, weather)  # type: ignore[arg-type]  # wrong on purpose


def test_schema_with_other_draft_is_accepted() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": True}},
    }
    r = ToolRegistry()
    r.register(ToolDefinition(name="n", description="", input_schema=schema), lambda n: n)
    assert r.validate("n", {"n": 0}) == ["parameter 'n' must be > 0, got 0"]


def test_unregister(registry: ToolRegistry) -> None:
    assert registry.unregister("weather") is True
    assert registry.unregister("weather") is False
    assert len(registry) == 0 and registry.to_openai_tools() == []


# -- version and caches -------------------------------------------------------------------


def test_version_changes_on_every_change_and_is_unique_across_registries(registry: ToolRegistry) -> None:
    seen = {registry.version}
    registry.register(make("b"), weather)
    seen.add(registry.version)
    registry.unregister("b")
    seen.add(registry.version)
    other = ToolRegistry()
    seen.add(other.version)
    assert len(seen) == 4
    v = registry.version
    registry.unregister("missing")
    registry.names()
    assert registry.version == v, "queries and no-op unregisters keep the version"


def test_to_openai_tools_is_cached_and_invalidated(registry: ToolRegistry) -> None:
    first = registry.to_openai_tools()
    second = registry.to_openai_tools()
    assert first == second and first is not second, "a new list each call"
    assert first[0] is second[0], "dicts are shared, not rebuilt"
    assert first == [make().to_openai_tool()]
    first.clear()
    assert len(registry.to_openai_tools()) == 1, "callers cannot corrupt the cache"
    registry.register(make("b"), weather)
    assert [t["function"]["name"] for t in registry.to_openai_tools()] == ["weather", "b"]
    registry.unregister("weather")
    assert [t["function"]["name"] for t in registry.to_openai_tools()] == ["b"]


# -- subset -------------------------------------------------------------------------------


def test_subset_shares_handlers_in_given_order() -> None:
    r = ToolRegistry()
    for n in ("a", "b", "c"):
        r.register(make(n), weather)
    sub = r.subset(["c", "a", "c"])
    assert sub.names() == ["c", "a"]
    assert sub.get("a") is r.get("a")
    sub.unregister("a")
    assert r.has("a"), "the subset is independent of its parent"
    assert sub.version != r.version


def test_subset_of_a_single_name_string() -> None:
    r = ToolRegistry()
    r.register(make("abc"), weather)
    assert r.subset("abc").names() == ["abc"], "a bare str is one name, not its characters"


def test_subset_unknown_names_raise_tool_not_found(registry: ToolRegistry) -> None:
    with pytest.raises(ToolNotFound) as info:
        registry.subset(["weather", "x"])
    assert info.value.code == "tool.not_found" and info.value.tool_name == "x"
    with pytest.raises(ToolNotFound, match=r"unknown tools \['x', 'y'\]"):
        registry.subset(["x", "y"])


# -- validate / invoke --------------------------------------------------------------------


def test_validate(registry: ToolRegistry) -> None:
    assert registry.validate("weather", {"city": "Oslo"}) == []
    assert registry.validate("weather", {}) == ["missing required parameter 'city'"]
    with pytest.raises(ToolNotFound):
        registry.validate("nope", {})


def test_invoke_returns_the_handler_value_unchanged() -> None:
    value = object()
    r = ToolRegistry()
    r.register(ToolDefinition(name="v", description=""), lambda: value)
    assert r.invoke("v", {}) is value
    assert r.invoke("v") is value


def test_invoke_passes_keyword_arguments(registry: ToolRegistry) -> None:
    assert registry.invoke("weather", {"city": "Oslo"}) == "sunny in Oslo"


def test_invoke_unknown_tool(registry: ToolRegistry) -> None:
    with pytest.raises(ToolNotFound) as info:
        registry.invoke("nope", {})
    assert info.value.tool_name == "nope" and "weather" in str(info.value)


def test_invoke_invalid_arguments_lists_every_problem() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    calls: list[object] = []
    r = ToolRegistry()
    r.register(ToolDefinition(name="w", description="", input_schema=schema), lambda **kw: calls.append(kw))
    with pytest.raises(ToolValidationError) as info:
        r.invoke("w", {"days": "2", "colour": "red"})
    assert info.value.code == "tool.invalid_args" and info.value.tool_name == "w"
    assert info.value.problems == [
        "missing required parameter 'city'",
        "unexpected parameter 'colour'",
        "parameter 'days' must be of type integer, got string",
    ]
    assert calls == [], "invalid arguments never reach the handler"


def test_invoke_non_object_arguments_is_a_validation_error(registry: ToolRegistry) -> None:
    with pytest.raises(ToolValidationError, match="arguments must be of type object, got array"):
        registry.invoke("weather", [1, 2])  # type: ignore[arg-type]  # junk on purpose


def test_invoke_async_handler_in_sync_context_raises() -> None:
    called = False

    async def slow(city: str) -> str:
        nonlocal called
        called = True
        return city

    r = ToolRegistry()
    r.register(make("slow"), slow)
    with pytest.raises(AsyncToolInSyncContext) as info:
        r.invoke("slow", {"city": "x"})
    assert info.value.code == "tool.async_in_sync" and isinstance(info.value, TypeError)
    assert not called


def test_invoke_sync_handler_returning_a_coroutine_raises() -> None:
    async def inner() -> int:
        return 1

    r = ToolRegistry()
    r.register(ToolDefinition(name="c", description=""), lambda: inner())
    with pytest.raises(AsyncToolInSyncContext):
        r.invoke("c", {})


def test_async_detection_covers_partials_and_callable_objects() -> None:
    async def base(city: str, suffix: str) -> str:
        return city + suffix

    class Handler:
        async def __call__(self, city: str) -> str:
            return city

    r = ToolRegistry()
    r.register(make("p"), functools.partial(base, suffix="!"))
    r.register(make("o"), Handler())
    assert r.get("p").is_async and r.get("o").is_async  # type: ignore[union-attr]  # registered above


async def test_invoke_async_awaits_async_handlers() -> None:
    async def fetch(city: str) -> dict[str, str]:
        await asyncio.sleep(0)
        return {"city": city}

    r = ToolRegistry()
    r.register(make("fetch"), fetch)
    assert await r.invoke_async("fetch", {"city": "Oslo"}) == {"city": "Oslo"}


async def test_invoke_async_runs_sync_handlers_in_a_worker_thread_with_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: dict[str, object] = {}

    def handler(city: str) -> str:
        seen["thread"] = threading.get_ident()
        seen["var"] = var.get()
        return city

    r = ToolRegistry()
    r.register(make("h"), handler)
    var.set("caller value")
    assert await r.invoke_async("h", {"city": "x"}) == "x"
    assert seen == {"thread": seen["thread"], "var": "caller value"}
    assert seen["thread"] != threading.get_ident()


async def test_invoke_async_validates_and_finds(registry: ToolRegistry) -> None:
    with pytest.raises(ToolValidationError):
        await registry.invoke_async("weather", {})
    with pytest.raises(ToolNotFound):
        await registry.invoke_async("nope", {})


async def test_invoke_async_handler_exception_propagates(registry: ToolRegistry) -> None:
    def boom(city: str) -> str:
        raise KeyError(city)

    registry.register(make("boom"), boom)
    with pytest.raises(KeyError):
        await registry.invoke_async("boom", {"city": "x"})


def test_errors_are_power_loop_errors() -> None:
    for cls in (ToolDefinitionError, ToolNotFound, ToolValidationError, AsyncToolInSyncContext):
        assert issubclass(cls, PowerLoopError)


# -- decorators and typed functions ------------------------------------------------------


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


@dataclasses.dataclass(frozen=True)
class Place:
    city: str
    country: str = "NO"


def test_registry_tool_decorator_bare_returns_the_function() -> None:
    r = ToolRegistry()

    @r.tool
    def greet(name: str) -> str:
        """Say hello."""
        return f"hello {name}"

    assert greet("x") == "hello x"
    d = r.get("greet").definition  # type: ignore[union-attr]  # registered above
    assert d.description == "Say hello."
    assert d.input_schema["required"] == ["name"]
    assert r.invoke("greet", {"name": "Ada"}) == "hello Ada"


def test_registry_tool_decorator_with_options() -> None:
    r = ToolRegistry()

    @r.tool(name="hi", description="Greets.", timeout_s=5.0)
    async def greet(name: str) -> str:
        return name

    d = r.get("hi").definition  # type: ignore[union-attr]  # registered above
    assert (d.name, d.description, d.timeout_s) == ("hi", "Greets.", 5.0)
    assert r.get("hi").is_async  # type: ignore[union-attr]  # registered above
    with pytest.raises(ToolDefinitionError):

        @r.tool(name="hi")
        def again() -> None: ...

    @r.tool(name="hi", overwrite=True)
    def replaced() -> str:
        return "new"

    assert r.invoke("hi", {}) == "new"


def test_typed_function_arguments_are_converted() -> None:
    r = ToolRegistry()
    seen: list[object] = []

    @r.tool
    def forecast(place: Place, unit: Unit = Unit.C, days: tuple[int, ...] = ()) -> str:
        seen.extend([place, unit, days])
        return "ok"

    assert r.invoke("forecast", {"place": {"city": "Oslo"}, "unit": "fahrenheit", "days": [1, 2]}) == "ok"
    assert seen == [Place(city="Oslo"), Unit.F, (1, 2)]
    assert r.validate("forecast", {"place": {"city": "Oslo"}, "unit": "kelvin"}) == [
        "parameter 'unit' must be one of ['celsius', 'fahrenheit'], got 'kelvin'"
    ]


def test_module_level_tool_marks_without_registering() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @tool(name="mul", timeout_s=1.0)
    def multiply(a: int, b: int) -> int:
        return a * b

    marked = add.__power_loop_tool__  # type: ignore[attr-defined]  # set by @tool
    assert isinstance(marked, ToolDefinition) and marked.name == "add"
    assert add(2, 3) == 5
    r = ToolRegistry.from_functions(add, multiply)
    assert r.names() == ["add", "mul"]
    assert r.get("mul").definition.timeout_s == 1.0  # type: ignore[union-attr]  # registered above
    assert r.invoke("mul", {"a": 2, "b": 3}) == 6
    d = r.register_function(add, name="plus", overwrite=False)
    assert d.name == "plus" and d.description == "Add two integers."


def test_register_function_of_plain_function() -> None:
    r = ToolRegistry()
    d = r.register_function(weather, description="Custom.", max_output_chars=10)
    assert (d.name, d.description, d.max_output_chars) == ("weather", "Custom.", 10)
    assert r.get("weather").convert is None  # type: ignore[union-attr]  # nothing to convert


def test_register_function_rejects_unsupported_signatures() -> None:
    def star(*args: int) -> None: ...

    with pytest.raises(ToolDefinitionError, match=r"\*args"):
        ToolRegistry().register_function(star)
    with pytest.raises(ToolDefinitionError, match="name"):
        ToolRegistry().register_function(lambda: None)
