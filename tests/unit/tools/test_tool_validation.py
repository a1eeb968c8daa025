"""Argument validation: one sentence per problem, naming the parameter, every problem at once."""

from __future__ import annotations

from typing import Any

import pytest

from power_loop.contracts.errors import ToolDefinitionError
from power_loop.tools import check_tool_schema, schema_problems, validate_arguments
from power_loop.tools.validation import compile_validator, render_path


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **extra}


@pytest.mark.parametrize(
    ("schema", "args", "expected"),
    [
        # types
        (
            obj({"count": {"type": "integer"}}),
            {"count": "3"},
            "parameter 'count' must be of type integer, got string",
        ),
        (obj({"ok": {"type": "boolean"}}), {"ok": 1}, "parameter 'ok' must be of type boolean, got integer"),
        (obj({"n": {"type": "integer"}}), {"n": True}, "parameter 'n' must be of type integer, got boolean"),
        (
            obj({"n": {"type": ["integer", "null"]}}),
            {"n": 1.5},
            "parameter 'n' must be of type integer or null, got number",
        ),
        (obj({}), [], "arguments must be of type object, got array"),
        # required / properties / additionalProperties
        (obj({"city": {"type": "string"}}, required=["city"]), {}, "missing required parameter 'city'"),
        (obj({}, additionalProperties=False), {"colour": 1}, "unexpected parameter 'colour'"),
        (obj({}, unevaluatedProperties=False), {"colour": 1}, "unexpected parameter 'colour'"),
        (obj({"x": False}), {"x": 1}, "parameter 'x' is not allowed"),
        # enum / const
        (
            obj({"mode": {"enum": ["a", "b"]}}),
            {"mode": "c"},
            "parameter 'mode' must be one of ['a', 'b'], got 'c'",
        ),
        (obj({"v": {"const": 1}}), {"v": 2}, "parameter 'v' must be equal to 1, got 2"),
        # bounds
        (obj({"n": {"minimum": 1}}), {"n": 0}, "parameter 'n' must be >= 1, got 0"),
        (obj({"n": {"maximum": 9}}), {"n": 10}, "parameter 'n' must be <= 9, got 10"),
        (obj({"n": {"exclusiveMinimum": 0}}), {"n": 0}, "parameter 'n' must be > 0, got 0"),
        (obj({"n": {"exclusiveMaximum": 5}}), {"n": 5}, "parameter 'n' must be < 5, got 5"),
        (obj({"n": {"multipleOf": 5}}), {"n": 7}, "parameter 'n' must be a multiple of 5, got 7"),
        # lengths
        (
            obj({"s": {"minLength": 3}}),
            {"s": "ab"},
            "parameter 's' must be at least 3 characters long, got 2",
        ),
        (obj({"s": {"maxLength": 1}}), {"s": "ab"}, "parameter 's' must be at most 1 character long, got 2"),
        (obj({"a": {"minItems": 1}}), {"a": []}, "parameter 'a' must have at least 1 item, got 0"),
        (obj({"a": {"maxItems": 2}}), {"a": [1, 2, 3]}, "parameter 'a' must have at most 2 items, got 3"),
        (
            obj({"o": {"minProperties": 2}}),
            {"o": {"a": 1}},
            "parameter 'o' must have at least 2 properties, got 1",
        ),
        (obj({"a": {"uniqueItems": True}}), {"a": [1, 1]}, "parameter 'a' must not contain duplicate items"),
        # pattern / format
        (
            obj({"c": {"pattern": "^[A-Z]+$"}}),
            {"c": "ab"},
            "parameter 'c' must match pattern '^[A-Z]+$', got 'ab'",
        ),
        (
            obj({"d": {"format": "date"}}),
            {"d": "2024-13-45"},
            "parameter 'd' must be a valid date, got '2024-13-45'",
        ),
        # items / nesting
        (
            obj(
                {
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"qty": {"type": "integer"}}},
                    }
                }
            ),
            {"items": [{"qty": 1}, {"qty": 2}, {"qty": "x"}]},
            "parameter 'items[2].qty' must be of type integer, got string",
        ),
        (
            obj({"addr": obj({"city": {"type": "string"}}, required=["city"])}),
            {"addr": {}},
            "missing required parameter 'addr.city'",
        ),
        (
            obj({"t": {"type": "array", "prefixItems": [{"type": "integer"}], "items": False}}),
            {"t": [1, 2]},
            "parameter 't[1]' is not allowed",
        ),
        (
            obj({"a": {"contains": {"type": "integer"}}}),
            {"a": ["x"]},
            "parameter 'a' must contain at least one matching item",
        ),
        # combinators
        (
            obj({"v": {"anyOf": [{"type": "integer"}, {"type": "array"}]}}),
            {"v": "s"},
            "parameter 'v' must match one of the allowed alternatives: "
            "#1: parameter 'v' must be of type integer, got string"
            " | #2: parameter 'v' must be of type array, got string",
        ),
        (
            obj({"v": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}),
            {"v": 1},
            "parameter 'v' must match exactly one of the allowed alternatives, but matches several",
        ),
        (
            obj({"v": {"not": {"type": "string"}}}),
            {"v": "s"},
            "parameter 'v' must not match the schema {'type': 'string'}",
        ),
        (obj({"v": {"allOf": [{"minimum": 2}]}}), {"v": 1}, "parameter 'v' must be >= 2, got 1"),
        (
            obj({}, dependentRequired={"a": ["b"]}),
            {"a": 1},
            "missing required parameter 'b' (required with 'a')",
        ),
        (
            obj({"m": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}}}),
            {"m": {"Ab": 1}},
            "parameter 'm' has an invalid parameter name 'Ab': 'Ab' does not match '^[a-z]+$'",
        ),
        (
            obj({}, **{"if": {"required": ["a"]}, "then": {"required": ["b"]}}),
            {"a": 1},
            "missing required parameter 'b'",
        ),
    ],
)
def test_each_keyword_family_names_the_parameter(schema: dict[str, Any], args: Any, expected: str) -> None:
    check_tool_schema("t", schema)
    assert validate_arguments(schema, args) == [expected]


def test_valid_arguments_have_no_problems() -> None:
    schema = obj({"city": {"type": "string"}, "n": {"type": "integer", "minimum": 0}}, required=["city"])
    assert validate_arguments(schema, {"city": "Oslo", "n": 3}) == []


def test_every_problem_is_listed_in_path_order() -> None:
    schema = obj(
        {
            "city": {"type": "string"},
            "count": {"type": "integer"},
            "mode": {"enum": ["a", "b"]},
            "items": {"type": "array", "items": {"type": "integer"}},
        },
        required=["city", "count"],
        additionalProperties=False,
    )
    problems = validate_arguments(
        schema, {"count": "3", "mode": "c", "colour": 1, "items": [1, "x", 2, "y"] + [0] * 9 + ["z"]}
    )
    assert problems == [
        "missing required parameter 'city'",
        "unexpected parameter 'colour'",
        "parameter 'count' must be of type integer, got string",
        "parameter 'items[1]' must be of type integer, got string",
        "parameter 'items[3]' must be of type integer, got string",
        "parameter 'items[13]' must be of type integer, got string",
        "parameter 'mode' must be one of ['a', 'b'], got 'c'",
    ]


def test_several_missing_and_unexpected_are_separate_problems() -> None:
    schema = obj({"a": {}, "b": {}}, required=["a", "b"], additionalProperties=False)
    assert validate_arguments(schema, {"x": 1, "y": 2}) == [
        "missing required parameter 'a'",
        "missing required parameter 'b'",
        "unexpected parameter 'x'",
        "unexpected parameter 'y'",
    ]


def test_pattern_properties_are_not_unexpected() -> None:
    schema = obj({}, patternProperties={"^x_": {"type": "integer"}}, additionalProperties=False)
    assert validate_arguments(schema, {"x_a": 1, "other": 2}) == ["unexpected parameter 'other'"]


def test_draft4_boolean_exclusive_minimum() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        **obj({"n": {"minimum": 0, "exclusiveMinimum": True}}),
    }
    assert validate_arguments(schema, {"n": 0}) == ["parameter 'n' must be > 0, got 0"]


def test_long_values_are_shortened_in_messages() -> None:
    problems = validate_arguments(obj({"m": {"enum": ["a"]}}), {"m": "x" * 500})
    assert len(problems[0]) < 150 and problems[0].endswith("…")


def test_remote_references_are_never_fetched() -> None:
    schema = obj({"a": {"$ref": "http://example.invalid/schema.json"}})
    [problem] = validate_arguments(schema, {"a": 1})
    assert problem.startswith("arguments cannot be validated:")


def test_local_references_resolve() -> None:
    schema = {**obj({"a": {"$ref": "#/$defs/pos"}}), "$defs": {"pos": {"type": "integer", "minimum": 1}}}
    assert validate_arguments(schema, {"a": 0}) == ["parameter 'a' must be >= 1, got 0"]


def test_compiled_validator_is_accepted_and_reused() -> None:
    schema = obj({"a": {"type": "integer"}})
    validator = compile_validator(schema)
    assert validate_arguments(validator, {"a": "x"}) == ["parameter 'a' must be of type integer, got string"]
    assert validate_arguments(schema, {"a": 1}) == validate_arguments(schema, {"a": 2}) == []


def test_schema_problems_carry_path_and_keyword() -> None:
    schema = obj({"items": {"type": "array", "items": obj({"qty": {"type": "integer"}}, required=["qty"])}})
    [problem] = schema_problems(schema, {"items": [{}]})
    assert (problem.path, problem.keyword, problem.location) == (
        ("items", 0, "qty"),
        "required",
        "items[0].qty",
    )


def test_render_path() -> None:
    assert render_path(()) == ""
    assert render_path(("a", 2, "b")) == "a[2].b"
    assert render_path((0, "x")) == "[0].x"


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "objekt"}, "'objekt' is not a JSON Schema type"),
        ({"properties": 5}, "at properties: 5 is not of type 'object'"),
        ({"type": "object", "properties": {"a": {"minimum": "1"}}}, "at properties/a/minimum"),
        ({"type": "array"}, '"type" must be "object"'),
        ([], "must be a JSON object (dict)"),
    ],
)
def test_check_tool_schema_names_the_problem(schema: Any, fragment: str) -> None:
    with pytest.raises(ToolDefinitionError) as info:
        check_tool_schema("weather", schema)
    assert "tool 'weather' has an invalid input_schema" in str(info.value)
    assert fragment in str(info.value)


def test_check_tool_schema_reports_every_schema_problem() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integr"}, "b": {"minLength": -1}}}
    with pytest.raises(ToolDefinitionError) as info:
        check_tool_schema("t", schema)
    assert "properties/a/type" in str(info.value) and "properties/b/minLength" in str(info.value)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object"},
        {"properties": {}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {}},
    ],
)
def test_check_tool_schema_accepts_object_schemas(schema: dict[str, Any]) -> None:
    check_tool_schema("t", schema)
