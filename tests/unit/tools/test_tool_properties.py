"""Property tests: generated schemas accept the values they describe; junk never raises."""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import keyword
import string
from types import GenericAlias
from typing import Any, Literal, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from power_loop.tools import (
    ToolDefinition,
    ToolRegistry,
    check_tool_schema,
    execute_tool,
    function_schema,
    parse_tool_arguments,
    validate_arguments,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Shade(enum.Enum):
    DARK = "dark"
    LIGHT = "light"


BASE_TYPES: list[Any] = [str, int, float, bool, type(None), Shade, Literal["a", "b"], Any]
HASHABLE_TYPES: list[Any] = [str, int, bool]


def annotation_types() -> st.SearchStrategy[Any]:
    """Random annotations built only from what function_schema supports."""

    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            inner.map(lambda t: GenericAlias(list, (t,))),
            inner.map(lambda t: Optional[t]),  # noqa: UP045 - runtime construction
            inner.map(lambda t: GenericAlias(dict, (str, t))),
            inner.map(lambda t: GenericAlias(tuple, (t, ...))),
            st.tuples(inner, inner).map(lambda p: GenericAlias(tuple, p)),
            st.sampled_from(HASHABLE_TYPES).map(lambda t: GenericAlias(set, (t,))),
        )

    return st.recursive(st.sampled_from(BASE_TYPES), extend, max_leaves=6)


def tool_function(params: dict[str, Any], optional: set[str]) -> Any:
    """A function whose parameters have these annotations; ``optional`` ones default to None."""

    def fn(**kwargs: Any) -> None: ...

    parameters = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=tp,
            default=None if name in optional else inspect.Parameter.empty,
        )
        for name, tp in params.items()
    ]
    fn.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # a synthetic signature
    fn.__name__ = "generated"
    return fn


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
JUNK = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def instances(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid under the subset of JSON Schema that function_schema emits."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([instances(s) for s in schema["anyOf"]])
    declared = schema.get("type")
    if declared is None:
        return JUNK
    if isinstance(declared, list):
        return st.one_of([instances({**schema, "type": t}) for t in declared])
    if declared == "string":
        return st.text(max_size=8)
    if declared == "integer":
        return st.integers(-(10**6), 10**6)
    if declared == "number":
        return st.one_of(st.integers(-100, 100), st.floats(allow_nan=False, allow_infinity=False))
    if declared == "boolean":
        return st.booleans()
    if declared == "null":
        return st.none()
    if declared == "array":
        if "prefixItems" in schema:
            return st.tuples(*(instances(s) for s in schema["prefixItems"])).map(list)
        items = instances(schema.get("items", {}))
        if schema.get("uniqueItems"):
            return st.lists(items, max_size=4, unique_by=lambda v: json.dumps(v))
        return st.lists(items, max_size=4)
    assert declared == "object", schema
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    if not properties and isinstance(schema.get("additionalProperties"), dict):
        return st.dictionaries(st.text(max_size=5), instances(schema["additionalProperties"]), max_size=3)
    if not properties:
        return st.dictionaries(st.text(max_size=5), JUNK, max_size=3)
    return st.fixed_dictionaries(
        {k: instances(v) for k, v in properties.items() if k in required},
        optional={k: instances(v) for k, v in properties.items() if k not in required},
    )


NAMES = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6).filter(
    lambda n: n not in ("self", "cls") and not keyword.iskeyword(n)
)


@FAST
@given(st.dictionaries(NAMES, annotation_types(), min_size=1, max_size=4), st.data())
def test_values_generated_from_a_function_schema_validate_clean(
    params: dict[str, Any], data: st.DataObject
) -> None:
    optional = data.draw(st.sets(st.sampled_from(sorted(params))))
    _, schema = function_schema(tool_function(params, optional))
    check_tool_schema("generated", schema)
    args = data.draw(instances(schema))
    assert validate_arguments(schema, args) == []


@FAST
@given(st.dictionaries(NAMES, annotation_types(), min_size=1, max_size=3), JUNK)
def test_junk_arguments_only_ever_produce_problem_lists(params: dict[str, Any], junk: Any) -> None:
    _, schema = function_schema(tool_function(params, set()))
    problems = validate_arguments(schema, junk)
    assert all(isinstance(p, str) and p for p in problems)
    assert len(problems) == len(set(problems)), "no duplicates"
    assert validate_arguments(schema, junk) == problems, "deterministic"


HAND_WRITTEN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "pattern": "^[A-Z]"},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "mode": {"enum": ["fast", "slow"]},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "maxItems": 3},
        "where": {"oneOf": [{"type": "string"}, {"type": "object", "required": ["lat", "lon"]}]},
    },
    "required": ["city"],
    "additionalProperties": False,
}


@FAST
@given(
    st.one_of(JUNK, st.dictionaries(st.sampled_from([*HAND_WRITTEN["properties"], "x"]), JUNK, max_size=5))
)
def test_junk_against_a_rich_schema_and_execution_never_raise(junk: Any) -> None:
    problems = validate_arguments(HAND_WRITTEN, junk)
    assert all(isinstance(p, str) for p in problems)
    registry = ToolRegistry()
    registry.register(ToolDefinition(name="w", description="", input_schema=HAND_WRITTEN), lambda **kw: kw)
    raw = junk if isinstance(junk, dict) else json.dumps(junk)
    outcome = asyncio.run(execute_tool(registry, "w", raw, timeout_s=5))
    assert outcome.failed == bool(problems) or outcome.error_kind == "invalid_json"
    if outcome.failed:
        assert outcome.output.startswith("Error: ") and not outcome.executed


@FAST
@given(st.one_of(st.text(max_size=40), JUNK.map(json.dumps)))
def test_parse_tool_arguments_never_raises(raw: str) -> None:
    args, detail = parse_tool_arguments(raw)
    assert (args is None) != (detail is None)
    assert args is None or isinstance(args, dict)
