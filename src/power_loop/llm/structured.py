"""Structured output: a named JSON Schema the final reply must match, and its parser.

``StructuredOutputSpec`` names the schema and turns it into what a provider understands
(OpenAI ``response_format`` json_schema; the Anthropic transport forces a synthetic tool
from the same ``response_format``). ``parse_structured`` turns a reply back into a dict.

Invariants:
- Parsing is tolerant of how models wrap JSON, in this order: strip Markdown fences and
  parse; else the first balanced ``{…}`` of the text; else the same with trailing commas
  removed. Nothing else is "repaired": a reply that still does not parse is an error.
- Validation runs the whole schema through the tools' JSON Schema validator
  (``power_loop.tools.validation``), so a structured reply and tool arguments are held
  to the same rules and described in the same words.
- ``StructuredOutputError.reason`` is one of ``no_json``, ``invalid_json``,
  ``not_object``, ``missing_required:<field>``, ``wrong_type:<path>``, ``schema:<path>``;
  ``.detail`` lists every problem, and the message names each field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError, StructuredOutputError
from power_loop.contracts.json import JSONObject
from power_loop.llm.contract import LLMResponse

__all__ = ["StructuredOutputSpec", "parse_structured", "repair_prompt"]

# Patterns, not compiled objects: ``re`` compiles and caches them on first use, so a
# program that never asks for structured output does not pay for compiling them.
_NAME = r"[A-Za-z0-9_-]{1,64}"
_FENCE = r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```"
_SPEC_KEYS = frozenset({"name", "schema", "strict", "description", "examples"})


@dataclass(frozen=True, slots=True, kw_only=True)
class StructuredOutputSpec:
    """A named JSON Schema for the final reply of a send.

    Example:
        >>> spec = StructuredOutputSpec(name="person", schema={
        ...     "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})
        >>> spec.to_openai_response_format()["json_schema"]["name"]
        'person'

    Raises:
        InvalidArgumentError: (``invalid_argument``) a name outside ``[A-Za-z0-9_-]{1,64}``
            or a schema that is not a JSON Schema of an object; every problem is named.
    """

    name: str
    """Schema name sent to the provider (``[A-Za-z0-9_-]{1,64}``)."""
    schema: JSONObject
    """A JSON Schema describing an object; sent unchanged."""
    strict: bool = True
    """Ask the provider to enforce the schema exactly (OpenAI ``strict``)."""
    description: str | None = None
    """What the object is for, shown to the model."""
    examples: list[JSONObject] = field(default_factory=list)
    """Example objects, shown to the model when the schema travels in the prompt."""

    def __post_init__(self) -> None:
        from power_loop.tools.validation import schema_definition_problems

        problems: list[str] = []
        if not isinstance(self.name, str) or not re.fullmatch(_NAME, self.name):
            problems.append(f"name must match [A-Za-z0-9_-]{{1,64}}, got {self.name!r}")
        problems.extend(f"schema: {p}" for p in schema_definition_problems(self.schema))
        if not isinstance(self.examples, list) or not all(isinstance(e, dict) for e in self.examples):
            problems.append("examples must be a list of objects")
        if self.description is not None and not isinstance(self.description, str):
            problems.append(f"description must be a string or None, got {type(self.description).__name__}")
        if problems:
            raise InvalidArgumentError("invalid StructuredOutputSpec: " + "; ".join(problems))

    @classmethod
    def coerce(cls, value: StructuredOutputSpec | Mapping[str, Any]) -> StructuredOutputSpec:
        """A spec from a spec or a ``{"name", "schema", "strict"?, "description"?, "examples"?}`` dict.

        Raises:
            InvalidArgumentError: (``invalid_argument``) not a spec or dict, unknown or
                missing keys, or an invalid spec.
        """
        if isinstance(value, StructuredOutputSpec):
            return value
        if not isinstance(value, Mapping):
            raise InvalidArgumentError(
                f"output_schema must be a StructuredOutputSpec or a {{'name', 'schema'}} dict,"
                f" got {type(value).__name__}")
        unknown = sorted(set(value) - _SPEC_KEYS)
        missing = [k for k in ("name", "schema") if k not in value]
        problems = [f"unknown key {k!r}" for k in unknown] + [f"missing key {k!r}" for k in missing]
        if problems:
            raise InvalidArgumentError("invalid output_schema: " + "; ".join(problems)
                                       + " (expected name, schema, strict?, description?, examples?)")
        return cls(**dict(value))

    @classmethod
    def from_response_format(cls, response_format: Mapping[str, Any] | None) -> StructuredOutputSpec | None:
        """The spec inside an OpenAI json_schema ``response_format``; None for other formats."""
        if not response_format or response_format.get("type") != "json_schema":
            return None
        inner = response_format.get("json_schema")
        if not isinstance(inner, Mapping) or not isinstance(inner.get("schema"), dict):
            return None
        try:
            return cls(name=str(inner.get("name") or "structured_output"), schema=inner["schema"],
                       strict=bool(inner.get("strict", False)), description=inner.get("description"))
        except InvalidArgumentError:
            return None

    def to_openai_response_format(self) -> JSONObject:
        """``{"type": "json_schema", "json_schema": {"name", "schema", "strict"?, "description"?}}``."""
        inner: JSONObject = {"name": self.name, "schema": self.schema}
        if self.strict:
            inner["strict"] = True
        if self.description is not None:
            inner["description"] = self.description
        return {"type": "json_schema", "json_schema": inner}

    def prompt_instruction(self) -> str:
        """A system-prompt paragraph asking for this object, for servers without schema support."""
        lines = [f"Reply with only a JSON object named {self.name!r} that matches this JSON Schema,"
                 " with no other text:", json.dumps(self.schema, ensure_ascii=False)]
        if self.description:
            lines.insert(0, self.description)
        for example in self.examples:
            lines.append("Example: " + json.dumps(example, ensure_ascii=False))
        return "\n".join(lines)


def repair_prompt(error: StructuredOutputError, spec: StructuredOutputSpec) -> str:
    """The user message that sends an invalid structured reply back once for repair."""
    problems = error.detail if isinstance(error.detail, list) and error.detail else [str(error)]
    listed = "\n".join(f"- {p}" for p in problems)
    return (f"Your reply does not match the required JSON schema {spec.name!r}:\n{listed}\n"
            "Reply again with only the corrected JSON object, and no other text.")


# -- parsing ----------------------------------------------------------------------------


def _fail(message: str, reason: str, text: str, detail: Any = None) -> StructuredOutputError:
    return StructuredOutputError(message, reason=reason, raw_text=text, detail=detail)


def _first_balanced(text: str) -> str | None:
    """The first ``{…}`` whose braces balance, skipping braces inside JSON strings."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i + 1]
        start = text.find("{", start + 1)
    return None


def _without_trailing_commas(text: str) -> str:
    """``text`` with every ``,`` that directly precedes ``}`` or ``]`` removed (outside strings)."""
    out: list[str] = []
    in_string, escaped = False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == ",":
            rest = text[i + 1:].lstrip()
            if rest[:1] in ("}", "]"):
                continue
        out.append(ch)
    return "".join(out)


def _loads(candidate: str) -> tuple[Any, str | None]:
    try:
        return json.loads(candidate), None
    except ValueError as exc:
        return None, str(exc)


def _decode(text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        raise _fail("the reply is empty: expected a JSON object", "no_json", text)
    fence = re.search(_FENCE, stripped, re.DOTALL)
    candidate = fence.group(1).strip() if fence else stripped
    value, error = _loads(candidate)
    if error is None:
        return value
    balanced = _first_balanced(candidate)
    if balanced is not None:
        value, error = _loads(balanced)
        if error is None:
            return value
    value, error = _loads(_without_trailing_commas(balanced if balanced is not None else candidate))
    if error is None:
        return value
    if "{" not in candidate:
        raise _fail(f"the reply contains no JSON object: {stripped[:120]!r}", "no_json", text)
    raise _fail(f"the reply's JSON does not parse: {error}", "invalid_json", text)


def _problems(schema: JSONObject, value: JSONObject, text: str) -> None:
    from power_loop.tools.validation import compile_validator, render_path, schema_problems

    problems = schema_problems(compile_validator(schema), value)
    if not problems:
        return
    messages = [p.message.replace("parameter '", "field '") for p in problems]
    required = [p for p in problems if p.keyword == "required"]
    typed = [p for p in problems if p.keyword == "type"]
    if required:
        reason = f"missing_required:{render_path(required[0].path)}"
    elif typed:
        reason = f"wrong_type:{render_path(typed[0].path) or '$'}"
    else:
        reason = f"schema:{render_path(problems[0].path) or '$'}"
    raise _fail("the reply does not match the schema: " + "; ".join(messages), reason, text, messages)


def parse_structured(output: LLMResponse | str, *, schema: JSONObject | None = None) -> JSONObject:
    """Parse a reply into a JSON object and validate it against ``schema``.

    Args:
        output: the model's reply, or its text.
        schema: a JSON Schema the object must match; None skips validation.

    Returns:
        The parsed object.

    Raises:
        StructuredOutputError: (``structured_output.invalid``) ``.reason`` is one of
            ``no_json``, ``invalid_json``, ``not_object``, ``missing_required:<field>``,
            ``wrong_type:<path>``, ``schema:<path>``; ``.detail`` lists every problem.

    Example:
        >>> parse_structured('Sure: ```json\\n{"a": 1,}\\n```')
        {'a': 1}
    """
    text = output if isinstance(output, str) else (output.content_text or output.raw_text or "")
    if not isinstance(text, str):
        raise _fail(f"expected reply text, got {type(text).__name__}", "no_json", "")
    value = _decode(text)
    if not isinstance(value, dict):
        raise _fail(f"the reply is JSON but not an object: got {type(value).__name__}", "not_object", text)
    if schema is not None:
        _problems(schema, value, text)
    return value
