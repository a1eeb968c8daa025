"""StructuredOutputSpec and parse_structured: tolerant parsing, whole-schema validation."""

from __future__ import annotations

from typing import Any

import pytest

from power_loop import StructuredOutputError, parse_structured
from power_loop.contracts.errors import InvalidArgumentError
from power_loop.llm.contract import LLMResponse
from power_loop.llm.structured import StructuredOutputSpec, repair_prompt

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    "required": ["name", "age"],
}


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": 1}', {"a": 1}),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ('Here you go:\n```\n{"a": {"b": [1, 2]}}\n```\nAnything else?', {"a": {"b": [1, 2]}}),
    ('Sure! {"a": "brace } inside", "b": "quote \\" too"} Done.', {"a": "brace } inside", "b": 'quote " too'}),
    ('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
    ('text {"a": 1,} more {"b": 2}', {"a": 1}),
    ('  {"a": "trailing, comma, inside, string,"}  ', {"a": "trailing, comma, inside, string,"}),
])
def test_parse_is_tolerant_of_how_models_wrap_json(text: str, expected: dict[str, Any]) -> None:
    assert parse_structured(text) == expected


@pytest.mark.parametrize(("text", "reason"), [
    ("", "no_json"),
    ("   ", "no_json"),
    ("I cannot help with that.", "no_json"),
    ('{"a": tru', "invalid_json"),
    ("{not json at all}", "invalid_json"),
    ("[1, 2, 3]", "not_object"),
    ('"just a string"', "not_object"),
    ("42", "not_object"),
])
def test_parse_failures_have_a_reason(text: str, reason: str) -> None:
    with pytest.raises(StructuredOutputError) as info:
        parse_structured(text)
    assert info.value.reason == reason and info.value.code == "structured_output.invalid"
    assert info.value.raw_text == text


@pytest.mark.parametrize(("value", "reason", "named"), [
    ('{"name": "Ada"}', "missing_required:age", "field 'age'"),
    ('{"age": 3}', "missing_required:name", "field 'name'"),
    ('{"name": "Ada", "age": "36"}', "wrong_type:age", "field 'age' must be of type integer"),
    ('{"name": "Ada", "age": 3, "tags": ["a", 2]}', "wrong_type:tags[1]", "field 'tags[1]'"),
    ('{"name": "Ada", "age": -1}', "schema:age", "field 'age' must be >= 0"),
    ('{"name": "Ada", "age": 3, "address": {}}', "missing_required:address.city", "field 'address.city'"),
])
def test_validation_names_the_field(value: str, reason: str, named: str) -> None:
    with pytest.raises(StructuredOutputError) as info:
        parse_structured(value, schema=SCHEMA)
    assert info.value.reason == reason
    assert named in str(info.value)


def test_every_problem_is_listed_and_required_comes_first() -> None:
    with pytest.raises(StructuredOutputError) as info:
        parse_structured('{"age": "x", "tags": [1]}', schema=SCHEMA)
    assert info.value.reason == "missing_required:name"
    assert len(info.value.detail) == 3 and all(p in str(info.value) for p in info.value.detail)


def test_an_llm_response_is_parsed_from_its_text() -> None:
    response = LLMResponse(raw_text='{"name": "Ada", "age": 36}', content_text='{"name": "Ada", "age": 36}')
    assert parse_structured(response, schema=SCHEMA) == {"name": "Ada", "age": 36}


def test_spec_to_openai_response_format() -> None:
    spec = StructuredOutputSpec(name="person", schema=SCHEMA)
    assert spec.to_openai_response_format() == {
        "type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
    loose = StructuredOutputSpec(name="p", schema=SCHEMA, strict=False, description="A person.")
    assert loose.to_openai_response_format()["json_schema"] == {"name": "p", "schema": SCHEMA,
                                                                "description": "A person."}
    assert loose.to_openai_response_format()["json_schema"]["schema"] is SCHEMA  # unchanged


def test_spec_validation_reports_every_problem() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        StructuredOutputSpec(name="has space", schema={"type": "string"}, examples=["x"])  # type: ignore[list-item]
    message = str(info.value)
    assert "name must match" in message and '"type" must be "object"' in message and "examples" in message


def test_coerce_accepts_specs_and_dicts_only() -> None:
    spec = StructuredOutputSpec(name="p", schema=SCHEMA)
    assert StructuredOutputSpec.coerce(spec) is spec
    assert StructuredOutputSpec.coerce({"name": "p", "schema": SCHEMA}) == spec
    with pytest.raises(InvalidArgumentError, match=r"unknown key 'colour'.*missing key 'schema'"):
        StructuredOutputSpec.coerce({"name": "p", "colour": "red"})
    with pytest.raises(InvalidArgumentError, match="got list"):
        StructuredOutputSpec.coerce([1])  # type: ignore[arg-type]


def test_from_response_format_round_trips() -> None:
    spec = StructuredOutputSpec(name="p", schema=SCHEMA, description="d")
    assert StructuredOutputSpec.from_response_format(spec.to_openai_response_format()) == spec
    assert StructuredOutputSpec.from_response_format({"type": "json_object"}) is None
    assert StructuredOutputSpec.from_response_format(None) is None


def test_prompt_instruction_and_repair_prompt_name_the_schema() -> None:
    spec = StructuredOutputSpec(name="person", schema=SCHEMA, examples=[{"name": "Ada", "age": 36}])
    instruction = spec.prompt_instruction()
    assert "'person'" in instruction and '"required": ["name", "age"]' in instruction and "Example:" in instruction
    with pytest.raises(StructuredOutputError) as info:
        parse_structured('{"name": "Ada"}', schema=SCHEMA)
    repair = repair_prompt(info.value, spec)
    assert "'person'" in repair and "- missing required field 'age'" in repair
