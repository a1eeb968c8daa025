"""ToolDefinition: the OpenAI shape, merged required arguments, caching and copying."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from power_loop.contracts.errors import ToolDefinitionError
from power_loop.tools import RegisteredTool, ToolDefinition

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}


def test_to_openai_tool_has_the_function_shape() -> None:
    d = ToolDefinition(name="weather", description="Forecast.", input_schema=SCHEMA)
    assert d.to_openai_tool() == {
        "type": "function",
        "function": {"name": "weather", "description": "Forecast.", "parameters": SCHEMA},
    }


def test_default_schema_is_an_empty_object() -> None:
    d = ToolDefinition(name="ping", description="")
    assert d.input_schema == {"type": "object", "properties": {}}
    assert d.to_openai_tool()["function"]["parameters"] == {"type": "object", "properties": {}}
    assert d.required == ()


def test_required_merges_schema_first_then_required_params_without_duplicates() -> None:
    d = ToolDefinition(name="w", description="", input_schema=SCHEMA, required_params=("days", "city"))
    assert d.required == ("city", "days")
    assert d.to_openai_tool()["function"]["parameters"]["required"] == ["city", "days"]
    assert SCHEMA["required"] == ["city"], "the input schema itself is never modified"


def test_required_params_alone_become_required() -> None:
    d = ToolDefinition(
        name="w", description="", input_schema={"properties": {"a": {}}}, required_params=("a",)
    )
    params = d.to_openai_tool()["function"]["parameters"]
    assert params == {"properties": {"a": {}}, "type": "object", "required": ["a"]}


def test_required_params_list_is_stored_as_tuple() -> None:
    d = ToolDefinition(name="w", description="", required_params=["a"])  # type: ignore[arg-type]  # a list on purpose
    assert d.required_params == ("a",)


def test_openai_tool_is_computed_once() -> None:
    d = ToolDefinition(name="w", description="", input_schema=SCHEMA)
    assert d.to_openai_tool() is d.to_openai_tool()
    assert d.parameters is d.to_openai_tool()["function"]["parameters"]


def test_validate_uses_merged_required() -> None:
    d = ToolDefinition(name="w", description="", input_schema=SCHEMA, required_params=("days",))
    assert d.validate({}) == ["missing required parameter 'city'", "missing required parameter 'days'"]
    assert d.validate({"city": "Oslo", "days": 2}) == []
    assert d.validator() is d.validator()


def test_validator_of_invalid_schema_raises_definition_error() -> None:
    d = ToolDefinition(name="w", description="", input_schema={"type": "objekt"})
    with pytest.raises(ToolDefinitionError) as info:
        d.validator()
    assert info.value.code == "tool.invalid_definition"


def test_definitions_compare_by_value_and_ignore_caches() -> None:
    a = ToolDefinition(name="w", description="d", input_schema=SCHEMA)
    b = ToolDefinition(name="w", description="d", input_schema=dict(SCHEMA))
    a.to_openai_tool()
    a.validator()
    assert a == b
    assert "_validator" not in repr(a)


def test_replace_builds_fresh_caches() -> None:
    a = ToolDefinition(name="w", description="d", input_schema=SCHEMA)
    a.to_openai_tool()
    b = dataclasses.replace(a, name="other")
    assert b.to_openai_tool()["function"]["name"] == "other"


def test_definition_pickles_and_copies_after_use() -> None:
    a = ToolDefinition(name="w", description="d", input_schema=SCHEMA, timeout_s=3.0)
    a.validate({"city": "x"})
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a), copy.copy(a)):
        assert b == a
        assert b.validate({}) == ["missing required parameter 'city'"]


def test_definition_is_frozen_and_keyword_only() -> None:
    d = ToolDefinition(name="w", description="d")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.name = "x"  # type: ignore[misc]  # frozen on purpose
    with pytest.raises(TypeError):
        ToolDefinition("w", "d")  # type: ignore[call-arg]  # keyword-only on purpose


async def test_registered_tool_call_and_call_async() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    entry = RegisteredTool(definition=ToolDefinition(name="add", description=""), handler=add, is_async=False)
    assert entry.name == "add"
    assert entry.call({"a": 1, "b": 2}) == 3
    assert await entry.call_async({"a": 2, "b": 2}) == 4
