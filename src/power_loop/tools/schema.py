"""Function → tool: a JSON Schema and description derived from a typed Python function.

``function_schema(fn)`` reads the signature's annotations and the Google-style docstring
(summary, extended description and the ``Args:`` section; ``:param x:`` lines work too).
``argument_converter(fn)`` builds the inverse step: JSON arguments back into the Enum
members, dataclasses, tuples and sets the annotations promise.

Invariants:
    * Every parameter is named and keyword-passable: ``self``/``cls``, ``*args``,
      ``**kwargs`` and positional-only parameters are refused with ``ToolDefinitionError``.
    * Generated object schemas are closed (``additionalProperties: false``); a parameter
      with a default is optional and carries ``"default"`` when it is JSON-serialisable.
    * A description given with ``Annotated[X, "…"]`` wins over the docstring's.
    * An unsupported annotation is an error naming the parameter, never a silent ``{}``;
      an unannotated parameter accepts any JSON value.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import json
import re
import types
import typing
from collections import abc
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin

from power_loop.contracts.errors import ToolDefinitionError
from power_loop.contracts.json import JSONObject
from power_loop.tools.validation import json_type_name

__all__ = ["argument_converter", "function_schema", "parse_docstring"]

# Any below: annotations are arbitrary runtime objects (classes, typing special forms).
_ARGS_HEADERS = {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments"}
_SECTION = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_FIELD = re.compile(r"^:(\w+)(?:\s+(?:[^:]*\s)?(\w+))?:\s*(.*)$")
_SEQUENCES = {list, abc.Sequence, abc.MutableSequence, abc.Iterable, abc.Collection}
_SETS = {set, frozenset, abc.Set, abc.MutableSet}
_MAPPINGS = {dict, abc.Mapping, abc.MutableMapping}
_PRIMITIVES: dict[object, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}
_UNIONS: tuple[object, ...] = (Union, types.UnionType)
_WRAPPERS = {"Required", "NotRequired", "ReadOnly"}  # TypedDict qualifiers (typing or typing_extensions)
_COLLECTIONS: dict[str, Callable[[Any], Any]] = {"list": list, "vartuple": tuple, "tuple": tuple, "set": set}
_COLLECTIONS["frozenset"] = frozenset


def _is_typeddict(tp: object) -> bool:
    """A TypedDict from ``typing`` or ``typing_extensions`` (which ``typing`` does not recognise)."""
    return typing.is_typeddict(tp) or (
        isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")
    )


def _form_name(form: object) -> str | None:
    name = getattr(form, "_name", None)
    return name if isinstance(name, str) else None


def _kind(tp: Any) -> tuple[str, tuple[Any, ...]]:
    """Classify an annotation: ``(kind, args)``; the schema and converter both dispatch on it."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is typing.Annotated or _form_name(origin) in _WRAPPERS:
        return "annotated", args
    try:
        hash(tp)
    except TypeError:
        return "unsupported", ()
    if tp is inspect.Parameter.empty or tp is Any or tp is object:
        return "any", ()
    if tp is None or tp is type(None):
        return "null", ()
    if hasattr(tp, "__supertype__"):  # typing.NewType
        return "annotated", (tp.__supertype__,)
    if origin is Literal:
        return "literal", args
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "enum", (tp,)
    if tp in _PRIMITIVES:
        return "primitive", (tp,)
    if origin in _UNIONS:
        return "union", args
    for kind, family in (("list", _SEQUENCES), ("frozenset", {frozenset}), ("set", _SETS)):
        if tp in family or origin in family:
            return kind, args[:1]
    if tp is tuple or origin is tuple:
        fixed = args and not (len(args) == 2 and args[1] is Ellipsis)
        return ("tuple", args) if fixed else ("vartuple", args[:1])
    if tp in _MAPPINGS or origin in _MAPPINGS:
        return "mapping", args
    if _is_typeddict(tp) or (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
        return "object", (tp,)
    return "unsupported", ()


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and per-argument descriptions.

    Args:
        doc: The docstring (indentation is cleaned here).

    Returns:
        ``(description, {param: description})``; the description is the text before the
        first section header (summary and extended description).
    """
    intro: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    entry_indent: int | None = None
    current: str | None = None
    for raw in inspect.cleandoc(doc).splitlines() if doc else []:
        line, text = raw.rstrip(), raw.strip()
        indent = len(line) - len(text)
        header = _SECTION.match(line) if indent == 0 else None
        field = _SPHINX_FIELD.match(text) if indent == 0 else None
        if header or field:
            section, entry_indent, current = (header.group(1).lower() if header else "sphinx"), None, None
            if field and field.group(1) == "param" and field.group(2):
                current = field.group(2)
                params[current] = field.group(3).strip()
        elif section is None:
            intro.append(line)
        elif not text:
            continue
        elif section in _ARGS_HEADERS:
            entry_indent = indent if entry_indent is None else entry_indent
            entry = _ARG_LINE.match(text) if indent <= entry_indent else None
            if entry:
                current = entry.group(1)
                params[current] = entry.group(2).strip()
            elif current is not None:
                params[current] = f"{params[current]} {text}".strip()
        elif section == "sphinx" and current is not None and indent > 0:
            params[current] = f"{params[current]} {text}".strip()
    return "\n".join(intro).strip(), params


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _label(fn: Callable[..., Any]) -> str:
    target = _unwrap(fn)
    return str(getattr(target, "__qualname__", None) or type(target).__name__)


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except (NameError, SyntaxError, TypeError, ValueError) as exc:
        hint = " (annotations must resolve at module level)" if isinstance(exc, NameError) else ""
        raise ToolDefinitionError(
            f"cannot read the signature of tool function {_label(fn)!r}: {exc}{hint}"
        ) from exc


def _tool_params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    params = list(_signature(fn).parameters.values())
    problems: list[str] = []
    for p in params:
        if p.name in ("self", "cls"):
            problems.append(f"parameter {p.name!r}: pass a bound method or a plain function")
        elif p.kind is p.VAR_POSITIONAL:
            problems.append(f"*{p.name}: tools take named parameters only, not *args")
        elif p.kind is p.VAR_KEYWORD:
            problems.append(f"**{p.name}: tools take declared parameters only, not **kwargs")
        elif p.kind is p.POSITIONAL_ONLY:
            problems.append(f"parameter {p.name!r} is positional-only; arguments are passed by keyword")
    if problems:
        raise ToolDefinitionError(f"tool function {_label(fn)!r} cannot be a tool: " + "; ".join(problems))
    return params


def _with_default(prop: JSONObject, value: object) -> JSONObject:
    """Add ``"default"`` when ``value`` is JSON-serialisable (Enum members by value)."""
    if isinstance(value, enum.Enum):
        value = value.value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, tuple | set | frozenset):
        value = list(value)
    try:
        return {**prop, "default": json.loads(json.dumps(value))}
    except (TypeError, ValueError):
        return prop


class _Builder:
    """Turns annotations into schemas for one function, naming it in every error."""

    def __init__(self, fn_label: str) -> None:
        self.fn_label = fn_label
        self.seen: list[object] = []

    def fail(self, where: str, message: str) -> ToolDefinitionError:
        return ToolDefinitionError(f"tool function {self.fn_label!r}, parameter {where!r}: {message}")

    def schema(self, tp: Any, where: str) -> JSONObject:
        kind, args = _kind(tp)
        if kind == "annotated":
            out = self.schema(args[0], where)
            for meta in args[1:]:
                if isinstance(meta, str):
                    out = {**out, "description": meta}
                elif isinstance(meta, dict):
                    out = {**out, **meta}
            return out
        if kind in ("literal", "enum"):
            values = [m.value for m in args[0]] if kind == "enum" else list(args)
            return _enum_schema([v.value if isinstance(v, enum.Enum) else v for v in values])
        if kind in ("list", "vartuple", "set", "frozenset"):
            out = {"type": "array"}
            if args:
                out["items"] = self.schema(args[0], f"{where}[]")
            return {**out, "uniqueItems": True} if kind in ("set", "frozenset") else out
        if kind == "tuple":
            items = [self.schema(a, f"{where}[{i}]") for i, a in enumerate(args)]
            n = len(items)
            return {"type": "array", "prefixItems": items, "items": False, "minItems": n, "maxItems": n}
        if kind == "mapping":
            if args and args[0] not in (str, Any):
                raise self.fail(where, f"mapping keys must be str (JSON object keys), got {args[0]!r}")
            out = {"type": "object"}
            if len(args) == 2 and args[1] is not Any:
                out["additionalProperties"] = self.schema(args[1], f"{where}.*")
            return out
        if kind == "object":
            return self.object_schema(args[0], where)
        if kind == "union":
            return _union([self.schema(a, where) for a in args])
        if kind in ("primitive", "any", "null"):
            return {"type": _PRIMITIVES[args[0]]} if args else ({"type": "null"} if kind == "null" else {})
        raise self.fail(
            where,
            f"unsupported type {tp!r}: use str, int, float, bool, None, list, tuple, set, dict[str, X],"
            " Literal, an Enum, a TypedDict, a dataclass, or a union of these",
        )

    def object_schema(self, tp: type, where: str) -> JSONObject:
        if tp in self.seen:
            raise self.fail(where, f"recursive type {tp.__name__} cannot be expressed as an inline schema")
        self.seen.append(tp)
        try:
            hints = typing.get_type_hints(tp, include_extras=True)
        except (NameError, TypeError) as exc:
            raise self.fail(where, f"cannot resolve the annotations of {tp.__name__}: {exc}") from exc
        properties: JSONObject = {}
        required: list[str] = []
        if _is_typeddict(tp):
            properties = {key: self.schema(hint, f"{where}.{key}") for key, hint in hints.items()}
            required = [k for k, hint in hints.items() if _typed_dict_requires(tp, k, hint)]
        else:
            for f in dataclasses.fields(tp):
                if not f.init:
                    continue
                prop = self.schema(hints.get(f.name, Any), f"{where}.{f.name}")
                if "description" in f.metadata:
                    prop = {**prop, "description": str(f.metadata["description"])}
                if f.default is not dataclasses.MISSING:
                    prop = _with_default(prop, f.default)
                elif f.default_factory is dataclasses.MISSING:
                    required.append(f.name)
                properties[f.name] = prop
        self.seen.pop()
        out: JSONObject = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        if tp.__doc__ and not tp.__doc__.startswith(tp.__name__ + "("):  # not dataclass's generated doc
            summary = parse_docstring(tp.__doc__)[0]
            if summary:
                out["description"] = summary
        return out


def _typed_dict_requires(tp: type, key: str, hint: Any) -> bool:
    # An explicit Required/NotRequired wins: with postponed annotations a TypedDict cannot
    # see them when the class is built, so __required_keys__ may be wrong.
    qualifier = _form_name(get_origin(hint))
    if qualifier in ("Required", "NotRequired"):
        return qualifier == "Required"
    return key in getattr(tp, "__required_keys__", ())


def _enum_schema(values: list[Any]) -> JSONObject:
    names = {json_type_name(v) for v in values}
    return {"type": names.pop(), "enum": values} if len(names) == 1 else {"enum": values}


def _union(members: list[JSONObject]) -> JSONObject:
    if any(m == {} for m in members):
        return {}
    simple = [m["type"] for m in members if set(m) == {"type"} and isinstance(m["type"], str)]
    if len(simple) == len(members):
        return {"type": list(dict.fromkeys(simple))}
    return {"anyOf": members}


def _nullable(prop: JSONObject) -> JSONObject:
    """Let a parameter defaulting to None accept null even if its annotation forgot ``| None``."""
    declared = prop.get("type")
    if (
        not prop
        or declared == "null"
        or "null" in (declared or ())
        or {"type": "null"} in prop.get("anyOf", [])
    ):
        return prop
    if isinstance(declared, str) and set(prop) <= {"type", "description"}:
        return {**prop, "type": [declared, "null"]}
    return {"anyOf": [prop, {"type": "null"}]}


def function_schema(fn: Callable[..., Any]) -> tuple[str, JSONObject]:
    """Describe a typed function as a tool: its description and arguments schema.

    Args:
        fn: A function, bound method, ``functools.partial`` or callable object whose
            parameters are annotated (unannotated ones accept any JSON value).

    Returns:
        ``(description, schema)``: the docstring's description, and a closed object
        schema with one property per parameter.

    Raises:
        ToolDefinitionError: (``tool.invalid_definition``) ``self``/``cls``, ``*args``,
            ``**kwargs``, positional-only parameters, or an unsupported annotation.

    Example:
        >>> def weather(city: str, days: int = 1) -> str:
        ...     '''Forecast for a city.
        ...
        ...     Args:
        ...         city: City name.
        ...     '''
        ...     return "sunny"
        >>> function_schema(weather)[1]["required"]
        ['city']
    """
    label = _label(fn)
    params = _tool_params(fn)
    description, docs = parse_docstring(inspect.getdoc(_unwrap(fn)))
    builder = _Builder(label)
    properties: JSONObject = {}
    required: list[str] = []
    for p in params:
        prop = builder.schema(p.annotation, p.name)
        if "description" not in prop and p.name in docs:
            prop = {**prop, "description": docs[p.name]}
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        else:
            prop = _with_default(_nullable(prop) if p.default is None else prop, p.default)
        properties[p.name] = prop
    schema: JSONObject = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return description, schema


def argument_converter(fn: Callable[..., Any]) -> Callable[[JSONObject], JSONObject] | None:
    """A function turning validated JSON arguments into the values ``fn``'s annotations name.

    Enum parameters get members, dataclasses get instances, tuples/sets get tuples/sets,
    recursively through lists, dicts and optionals. Returns None when nothing needs converting.
    """
    hints = {p.name: p.annotation for p in _tool_params(fn) if _needs_conversion(p.annotation)}
    if not hints:
        return None

    def convert(args: JSONObject) -> JSONObject:
        return {k: (_convert(hints[k], v) if k in hints else v) for k, v in args.items()}

    return convert


def _needs_conversion(tp: Any) -> bool:
    kind, args = _kind(tp)
    if kind in ("enum", "vartuple", "tuple", "set", "frozenset", "object"):
        return True
    if kind == "literal":
        return any(isinstance(a, enum.Enum) for a in args)
    return kind in ("annotated", "union", "list", "mapping") and any(_needs_conversion(a) for a in args)


def _convert(tp: Any, value: Any) -> Any:  # Any: a validated JSON value in, a Python value out
    kind, args = _kind(tp)
    if kind == "annotated":
        return _convert(args[0], value)
    if kind == "enum":
        return value if isinstance(value, args[0]) else args[0](value)
    if kind == "literal":
        return next((a for a in args if isinstance(a, enum.Enum) and a.value == value), value)
    if kind == "union" and value is not None:
        for member in args:
            try:
                converted = _convert(member, value)
            except (TypeError, ValueError, KeyError):
                continue
            if converted is not value:
                return converted
    if kind in _COLLECTIONS and isinstance(value, list):
        if kind == "tuple":
            return tuple(_convert(a, x) for a, x in zip(args, value, strict=False))
        return _COLLECTIONS[kind](_convert(args[0] if args else Any, x) for x in value)
    if kind == "mapping" and isinstance(value, dict) and len(args) == 2:
        return {k: _convert(args[1], x) for k, x in value.items()}
    if kind == "object" and isinstance(value, dict):
        hints = typing.get_type_hints(args[0], include_extras=True)
        fields = {k: _convert(hints.get(k, Any), x) for k, x in value.items()}
        return fields if _is_typeddict(args[0]) else args[0](**fields)
    return value
