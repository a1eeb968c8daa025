"""JSON Schema checks for tools: is a schema valid, and what is wrong with these arguments.

Validation is done by the ``jsonschema`` library (the validator class named by the
schema's ``$schema``, Draft 2020-12 by default); this module only turns its errors into
sentences a model can act on, each naming the parameter ("missing required parameter
'city'", "parameter 'items[2].qty' must be of type integer, got string").

Invariants:
    * ``jsonschema`` is imported lazily, inside functions, so ``import power_loop`` does not
      pay for it; the first check or validation does.
    * Every problem is reported, in a deterministic order (by parameter path, then message),
      without duplicates; validating arguments never raises, whatever they contain.
    * Remote ``$ref``s are never fetched: an unresolvable reference is reported as a problem.
    * ``format`` is checked for the formats ``jsonschema`` can check without extra packages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from power_loop.contracts.errors import ToolDefinitionError
from power_loop.contracts.json import JSONObject

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = [
    "SchemaProblem",
    "check_tool_schema",
    "compile_validator",
    "json_type_name",
    "render_path",
    "schema_definition_problems",
    "schema_problems",
    "validate_arguments",
]

PathPart = str | int

_JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
_MAX_SHOWN = 80
_COMPARISONS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
_SIZE_WORDS = {
    "minLength": ("at least", "character"),
    "maxLength": ("at most", "character"),
    "minItems": ("at least", "item"),
    "maxItems": ("at most", "item"),
    "minProperties": ("at least", "propert"),
    "maxProperties": ("at most", "propert"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaProblem:
    """One way an instance violates a schema."""

    path: tuple[PathPart, ...]
    """Where: object keys and array indexes from the root (the missing key for ``required``)."""
    keyword: str
    """The JSON Schema keyword that failed (``type``, ``required``, ``enum`` …)."""
    message: str
    """A sentence naming the parameter, e.g. ``missing required parameter 'city'``."""

    @property
    def location(self) -> str:
        """The path as text: ``items[2].qty``; empty for the root."""
        return render_path(self.path)


def render_path(path: Sequence[PathPart]) -> str:
    """Render ``("items", 2, "qty")`` as ``items[2].qty``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(f".{part}" if out else part)
    return "".join(out)


def _subject(path: Sequence[PathPart]) -> str:
    return f"parameter '{render_path(path)}'" if path else "arguments"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def json_type_name(value: object) -> str:
    """The JSON type of a Python value (``bool`` is boolean, not integer)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _schema_location(path: Iterable[object]) -> str:
    parts = [str(p) for p in path]
    return "/".join(parts) if parts else "(root)"


def check_tool_schema(name: str, schema: object) -> None:
    """Raise unless ``schema`` is a valid JSON Schema describing an arguments object.

    Args:
        name: The tool's name, for the message.
        schema: The candidate ``input_schema``.

    Raises:
        ToolDefinitionError: (``tool.invalid_definition``) naming every problem found.
    """
    problems = schema_definition_problems(schema)
    if problems:
        raise ToolDefinitionError(f"tool {name!r} has an invalid input_schema: " + "; ".join(problems))


_META_VALIDATORS: dict[type, Validator] = {}  # per draft: checking a schema is frequent, building one is not


def schema_definition_problems(schema: object) -> list[str]:
    """Every reason ``schema`` is not a valid JSON Schema for an arguments object; [] if fine."""
    if not isinstance(schema, dict):
        return [f"it must be a JSON object (dict), got {type(schema).__name__}"]
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    cls = validator_for(schema, default=Draft202012Validator)
    meta = _META_VALIDATORS.get(cls)
    if meta is None:
        meta = _META_VALIDATORS[cls] = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
    problems: list[str] = []
    for error in sorted(meta.iter_errors(schema), key=lambda e: [str(p) for p in e.absolute_path]):
        where = _schema_location(error.absolute_path)
        if error.validator == "anyOf" and error.absolute_path and error.absolute_path[-1] == "type":
            problems.append(
                f"at {where}: {_short(error.instance)} is not a JSON Schema type"
                f" (use one of {', '.join(_JSON_TYPES)})"
            )
        else:
            problems.append(f"at {where}: {error.message}")
    if problems:
        return problems
    declared = schema.get("type")
    if declared is None:
        if "properties" not in schema:
            problems.append('it must describe an object: add "type": "object" and "properties"')
    elif declared != "object":
        problems.append(f'its "type" must be "object" (tool arguments are an object), got {declared!r}')
    return problems


def compile_validator(schema: JSONObject) -> Validator:
    """A reusable validator for ``schema`` (class chosen by ``$schema``; no remote ``$ref``)."""
    import referencing
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    cls = validator_for(schema, default=Draft202012Validator)
    prepared = _without_false_subschemas(schema)
    return cls(prepared, format_checker=cls.FORMAT_CHECKER, registry=referencing.Registry())


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("prefixItems", "allOf", "anyOf", "oneOf")


def _without_false_subschemas(schema: Any) -> Any:  # Any: a schema or any nested part of one
    """Replace ``false`` subschemas with the equivalent ``{"not": {}}``.

    ``jsonschema`` reports a value rejected by a ``false`` subschema without its path, so the
    problem could not name the parameter; ``{"not": {}}`` rejects the same values and keeps it.
    The schema is copied only where something changes.
    """
    if schema is False:
        return {"not": {}}
    if not isinstance(schema, dict):
        return schema
    changed: JSONObject = {}
    for key, sub in schema.items():
        if key in _SCHEMA_MAPS and isinstance(sub, dict):
            new_map = {k: _without_false_subschemas(v) for k, v in sub.items()}
            if any(new_map[k] is not v for k, v in sub.items()):
                changed[key] = new_map
        elif key in _SCHEMA_LISTS and isinstance(sub, list):
            new_list = [_without_false_subschemas(v) for v in sub]
            if any(a is not b for a, b in zip(new_list, sub, strict=True)):
                changed[key] = new_list
        elif key in ("items", "additionalItems", "contains", "not", "if", "then", "else") or (
            key in ("additionalProperties", "unevaluatedProperties", "propertyNames") and sub is not False
        ):
            new_sub = _without_false_subschemas(sub)
            if new_sub is not sub:
                changed[key] = new_sub
    return {**schema, **changed} if changed else schema


# Compiled validators of schemas passed as dicts, keyed by identity. The entry keeps the
# schema alive, so its id cannot be reused while cached; callers must not mutate a schema
# they validate against repeatedly.
_COMPILED: dict[int, tuple[JSONObject, Validator]] = {}
_COMPILED_MAX = 256


def _validator_of(schema: JSONObject | Validator) -> Validator:
    if not isinstance(schema, dict):
        return schema
    hit = _COMPILED.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    compiled = compile_validator(schema)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[id(schema)] = (schema, compiled)
    return compiled


def validate_arguments(schema: JSONObject | Validator, args: object) -> list[str]:
    """Every problem of ``args`` against ``schema`` as a sentence naming the parameter.

    Args:
        schema: A JSON Schema dict or a validator from :func:`compile_validator`.
        args: The decoded arguments (any value: a non-object is itself a problem).

    Returns:
        The problems sorted by parameter path then message; ``[]`` when ``args`` is valid.

    Example:
        >>> validate_arguments({"type": "object", "required": ["city"]}, {})
        ["missing required parameter 'city'"]
    """
    return [p.message for p in schema_problems(schema, args)]


def schema_problems(schema: JSONObject | Validator, instance: object) -> list[SchemaProblem]:
    """Like :func:`validate_arguments`, with each problem's path and keyword."""
    from referencing.exceptions import Unresolvable

    validator = _validator_of(schema)
    candidate: Any = instance  # Any: any value may be checked; non-JSON ones fail "type"
    try:
        errors = list(validator.iter_errors(candidate))
    except Unresolvable as exc:
        return [SchemaProblem(path=(), keyword="$ref", message=f"arguments cannot be validated: {exc}")]
    except re.error as exc:
        return [SchemaProblem(path=(), keyword="pattern", message=f"arguments cannot be validated: {exc}")]
    if not errors:
        return []
    return _ordered(p for error in errors for p in _describe(error))


def _path_key(path: tuple[PathPart, ...]) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)


def _ordered(problems: Iterable[SchemaProblem]) -> list[SchemaProblem]:
    unique: dict[tuple[tuple[PathPart, ...], str], SchemaProblem] = {}
    for problem in problems:
        unique.setdefault((problem.path, problem.message), problem)
    return sorted(unique.values(), key=lambda p: (_path_key(p.path), p.message))


def _describe(error: ValidationError) -> list[SchemaProblem]:
    path: tuple[PathPart, ...] = tuple(error.absolute_path)
    keyword = str(error.validator)
    value: Any = error.validator_value  # Any: whatever the failing keyword holds
    instance: Any = error.instance  # Any: the failing part of the arguments
    subject = _subject(path)

    def one(message: str, at: tuple[PathPart, ...] = path) -> list[SchemaProblem]:
        return [SchemaProblem(path=at, keyword=keyword, message=message)]

    if "propertyNames" in error.schema_path:
        return one(f"{subject} has an invalid parameter name {_short(instance)}: {error.message}")
    if keyword == "type":
        expected = " or ".join(value) if isinstance(value, list) else str(value)
        return one(f"{subject} must be of type {expected}, got {json_type_name(instance)}")
    if keyword == "required":
        return _missing(error, path, keyword)
    if keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        extras = _unexpected(error, instance)
        if extras:
            return [
                SchemaProblem(path=at, keyword=keyword, message=f"unexpected parameter '{render_path(at)}'")
                for at in ((*path, k) for k in extras)
            ]
    if keyword in ("enum", "const"):
        allowed = f"one of {value!r}" if keyword == "enum" else f"equal to {value!r}"
        return one(f"{subject} must be {allowed}, got {_short(instance)}")
    if keyword in _COMPARISONS:
        op = _COMPARISONS[keyword]
        if keyword in ("minimum", "maximum") and _schema_of(error).get("exclusive" + keyword.title()) is True:
            op = op[0]  # Draft 4: boolean exclusiveMinimum/exclusiveMaximum beside the bound
        return one(f"{subject} must be {op} {value!r}, got {_short(instance)}")
    if keyword == "multipleOf":
        return one(f"{subject} must be a multiple of {value!r}, got {_short(instance)}")
    if keyword in _SIZE_WORDS and isinstance(instance, str | list | dict):
        bound, unit = _SIZE_WORDS[keyword]
        plural = ("y", "ies") if unit == "propert" else ("", "s")
        noun = unit + plural[0 if value == 1 else 1]
        if unit == "character":
            return one(f"{subject} must be {bound} {value} {noun} long, got {len(instance)}")
        return one(f"{subject} must have {bound} {value} {noun}, got {len(instance)}")
    if keyword == "uniqueItems":
        return one(f"{subject} must not contain duplicate items")
    if keyword == "pattern":
        return one(f"{subject} must match pattern {value!r}, got {_short(instance)}")
    if keyword == "format":
        return one(f"{subject} must be a valid {value}, got {_short(instance)}")
    if keyword in ("anyOf", "oneOf"):
        if keyword == "oneOf" and not error.context:
            return one(f"{subject} must match exactly one of the allowed alternatives, but matches several")
        return one(f"{subject} must match one of the allowed alternatives: {_alternatives(error)}")
    if keyword == "not":
        if value == {}:
            return one(f"{subject} is not allowed")
        return one(f"{subject} must not match the schema {_short(value)}")
    if keyword in ("dependentRequired", "dependencies"):
        match = re.match(r"^(.*) is a dependency of (.*)$", error.message)
        if match:
            need, given = _literal(match.group(1)), _literal(match.group(2))
            if isinstance(need, str) and isinstance(given, str):
                at = (*path, need)
                return one(f"missing required parameter '{render_path(at)}' (required with '{given}')", at)
    if keyword == "contains":
        return one(f"{subject} must contain at least one matching item")
    return one(f"{subject}: {error.message}")


def _schema_of(error: ValidationError) -> Mapping[str, Any]:
    return error.schema if isinstance(error.schema, Mapping) else {}


def _literal(text: str) -> object:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def _missing(error: ValidationError, path: tuple[PathPart, ...], keyword: str) -> list[SchemaProblem]:
    names: list[str] = []
    if isinstance(error.validator_value, list) and isinstance(error.instance, dict):
        names = [n for n in error.validator_value if isinstance(n, str) and n not in error.instance]
    quoted = {repr(n) + " is a required property": n for n in names}
    name = quoted.get(error.message)
    if name is None:
        return [SchemaProblem(path=path, keyword=keyword, message=f"{_subject(path)}: {error.message}")]
    at = (*path, name)
    message = f"missing required parameter '{render_path(at)}'"
    return [SchemaProblem(path=at, keyword=keyword, message=message)]


def _unexpected(error: ValidationError, instance: dict[Any, Any]) -> list[str]:
    if error.validator == "additionalProperties":
        known = _schema_of(error).get("properties", {})
        patterns = list(_schema_of(error).get("patternProperties", {}))
        return sorted(
            str(k) for k in instance if k not in known and not any(re.search(p, str(k)) for p in patterns)
        )
    match = re.search(r"\((.*) (?:was|were) unexpected\)", error.message)
    names = _literal("(" + match.group(1) + ",)") if match else None
    return [str(n) for n in names] if isinstance(names, tuple) else []


def _alternatives(error: ValidationError) -> str:
    by_branch: dict[int, list[SchemaProblem]] = {}
    for sub in error.context or ():
        branch = sub.schema_path[0] if sub.schema_path else 0
        by_branch.setdefault(int(branch) if isinstance(branch, int) else 0, []).extend(_describe(sub))
    if not by_branch:
        return error.message
    parts = [
        f"#{i + 1}: " + "; ".join(p.message for p in _ordered(problems))
        for i, problems in sorted(by_branch.items())
    ]
    return " | ".join(parts)
