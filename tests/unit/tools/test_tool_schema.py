"""function_schema: JSON Schema and description from a typed function and its docstring."""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NewType, Optional, TypedDict, Union

import pytest
from typing_extensions import NotRequired

from power_loop.contracts.errors import ToolDefinitionError
from power_loop.tools import function_schema
from power_loop.tools.schema import argument_converter, parse_docstring
from power_loop.tools.validation import check_tool_schema


def prop(annotation: Any, **kwargs: Any) -> dict[str, Any]:
    """The schema of one parameter annotated with ``annotation``."""

    def f(x: Any) -> None: ...

    f.__annotations__ = {"x": annotation}
    if "default" in kwargs:
        f.__defaults__ = (kwargs["default"],)
    _, schema = function_schema(f)
    check_tool_schema("f", schema)
    result: dict[str, Any] = schema["properties"]["x"]
    return result


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(TypedDict):
    """A postal address."""

    street: str
    zip: NotRequired[int]


@dataclasses.dataclass
class Item:
    name: str
    qty: int = 1
    note: str = dataclasses.field(default="", metadata={"description": "Free text."})
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Node:
    child: Node | None = None


UserId = NewType("UserId", int)


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (type(None), {"type": "null"}),
        (Any, {}),
        (UserId, {"type": "integer"}),
        (Optional[int], {"type": ["integer", "null"]}),  # noqa: UP045 - the spelling under test
        (Union[int, str], {"type": ["integer", "string"]}),  # noqa: UP007 - the spelling under test
        (int | None, {"type": ["integer", "null"]}),
        (list[str], {"type": "array", "items": {"type": "string"}}),
        (Sequence[int], {"type": "array", "items": {"type": "integer"}}),
        (list, {"type": "array"}),
        (set[int], {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
        (frozenset[str], {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (
            tuple[int, str],
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "items": False,
                "minItems": 2,
                "maxItems": 2,
            },
        ),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (Mapping[str, Any], {"type": "object"}),
        (dict, {"type": "object"}),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (Literal[1, "x"], {"enum": [1, "x"]}),
        (Color, {"type": "string", "enum": ["red", "blue"]}),
        (Level, {"type": "integer", "enum": [1, 2]}),
        (Literal[Color.RED], {"type": "string", "enum": ["red"]}),
        (Annotated[int, "How many."], {"type": "integer", "description": "How many."}),
        (Annotated[int, {"minimum": 1}], {"type": "integer", "minimum": 1}),
        (list[int] | None, {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]}),
    ],
)
def test_annotation_schemas(annotation: Any, expected: dict[str, Any]) -> None:
    assert prop(annotation) == expected


def test_typed_dict_is_a_closed_nested_object() -> None:
    assert prop(Address) == {
        "type": "object",
        "properties": {"street": {"type": "string"}, "zip": {"type": "integer"}},
        "required": ["street"],
        "additionalProperties": False,
        "description": "A postal address.",
    }


def test_dataclass_is_a_closed_nested_object_with_defaults() -> None:
    assert prop(list[Item]) == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "qty": {"type": "integer", "default": 1},
                "note": {"type": "string", "description": "Free text.", "default": ""},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    }


def test_recursive_dataclass_is_refused_clearly() -> None:
    with pytest.raises(ToolDefinitionError, match="recursive type Node"):
        prop(Node)


@pytest.mark.parametrize("annotation", [bytes, complex, dict[int, str], object.__class__])
def test_unsupported_annotations_name_the_parameter(annotation: Any) -> None:
    with pytest.raises(ToolDefinitionError, match="parameter 'x'") as info:
        prop(annotation)
    assert info.value.code == "tool.invalid_definition"


def test_defaults_make_parameters_optional_and_are_recorded() -> None:
    def f(
        a: int, b: str = "x", c: Color = Color.BLUE, d: tuple[int, int] = (1, 2), e: object = object()
    ) -> None: ...

    _, schema = function_schema(f)
    assert schema["required"] == ["a"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["b"]["default"] == "x"
    assert schema["properties"]["c"]["default"] == "blue"
    assert schema["properties"]["d"]["default"] == [1, 2]
    assert "default" not in schema["properties"]["e"], "non-JSON defaults are left out"


def test_none_default_makes_the_parameter_nullable() -> None:
    assert prop(int, default=None) == {"type": ["integer", "null"], "default": None}
    assert prop(Optional[str], default=None) == {"type": ["string", "null"], "default": None}  # noqa: UP045
    assert prop(Item, default=None)["anyOf"][1] == {"type": "null"}


def test_no_parameters_gives_an_empty_closed_object() -> None:
    def ping() -> str:
        return "pong"

    assert function_schema(ping) == ("", {"type": "object", "properties": {}, "additionalProperties": False})


def test_description_and_parameter_docs_from_google_docstring() -> None:
    def weather(city: str, days: int, unit: Annotated[str, "Explicit wins."] = "C") -> str:
        """Get the forecast.

        Uses the public API.

        Args:
            city: The city name,
                for example Oslo.
            days (int): How many days.
            unit: Ignored, Annotated wins.

        Returns:
            The forecast text.

        Raises:
            ValueError: never.
        """
        return ""

    description, schema = function_schema(weather)
    assert description == "Get the forecast.\n\nUses the public API."
    props = schema["properties"]
    assert props["city"]["description"] == "The city name, for example Oslo."
    assert props["days"]["description"] == "How many days."
    assert props["unit"]["description"] == "Explicit wins."


def test_sphinx_param_lines_are_understood() -> None:
    description, params = parse_docstring(
        """Do it.

        :param path: Where to
            look.
        :returns: nothing
        """
    )
    assert description == "Do it."
    assert params == {"path": "Where to look."}


def test_parse_docstring_handles_empty_and_summary_only() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("One line.") == ("One line.", {})


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def f(*args): ...", "*args"),
        ("def f(**kwargs): ...", "**kwargs"),
        ("def f(self, x: int): ...", "'self'"),
        ("def f(cls): ...", "'cls'"),
        ("def f(a, /): ...", "positional-only"),
    ],
)
def test_unsupported_signatures_are_refused(source: str, fragment: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(ToolDefinitionError) as info:
        function_schema(namespace["f"])
    assert fragment in str(info.value) and "'f'" in str(info.value)


def test_unresolvable_annotation_is_a_definition_error() -> None:
    namespace: dict[str, Any] = {}
    exec("from __future__ import annotations\ndef f(x: Missing) -> None: ...", namespace)
    with pytest.raises(ToolDefinitionError, match="cannot read the signature"):
        function_schema(namespace["f"])


def test_bound_methods_partials_and_callable_objects() -> None:
    class Service:
        def lookup(self, key: str) -> str:
            """Look a key up."""
            return key

        def __call__(self, n: int) -> int:
            return n

    def scaled(value: int, factor: int) -> int:
        """Scale a value."""
        return value * factor

    assert function_schema(Service().lookup)[1]["required"] == ["key"]
    assert function_schema(Service())[1]["required"] == ["n"]
    description, schema = function_schema(functools.partial(scaled, factor=2))
    assert description == "Scale a value."
    assert "value" in schema["properties"]


def test_argument_converter_is_none_when_nothing_converts() -> None:
    def f(a: int, b: list[str], c: dict[str, int] | None = None) -> None: ...

    assert argument_converter(f) is None


def test_argument_converter_builds_python_values() -> None:
    def f(
        color: Color,
        items: list[Item],
        pair: tuple[int, Color],
        maybe: Color | None = None,
        tags: set[str] = frozenset(),  # type: ignore[assignment]  # any default works
        by_name: dict[str, Level] | None = None,
        address: Address | None = None,
        lit: Literal[Color.RED] = Color.RED,
    ) -> None: ...

    convert = argument_converter(f)
    assert convert is not None
    out = convert(
        {
            "color": "red",
            "items": [{"name": "a", "qty": 2}],
            "pair": [1, "blue"],
            "maybe": None,
            "tags": ["x", "x"],
            "by_name": {"a": 1},
            "address": {"street": "Main"},
            "lit": "red",
        }
    )
    assert out == {
        "color": Color.RED,
        "items": [Item(name="a", qty=2)],
        "pair": (1, Color.BLUE),
        "maybe": None,
        "tags": {"x"},
        "by_name": {"a": Level.LOW},
        "address": {"street": "Main"},
        "lit": Color.RED,
    }
