"""The fake model's brain: a deterministic, provider-neutral conversation → reply.

Wire formats (``openai_wire``, later Anthropic) translate HTTP bodies into OpenAI-shaped
messages and ``ToolSpec`` lists, ask ``Brain.reply`` and render its ``BrainReply``.
The same conversation always gets the same reply, tool-call ids included.

Rules, first match wins:

1. **User rules** (``Rule``), in the order added: ``re.search(pattern, text)`` against
   the last user message (against a tool result too when ``match_tool_results``).
2. **Tool results**: when the last message is a tool result, the reply lists the results
   of the last assistant turn's tool calls in call order::

       Here is what the tools returned:
       - get_weather: {"temp_c": 21}

3. **Tool use** (only when the request offers tools): ``call <tool>`` / ``use <tool>``
   naming an offered tool (several may be named: ``call add and call get_weather``)
   gives one tool call each, ids ``call_<n>`` with ``n`` = number of messages + position
   (unique within a growing conversation). Arguments: the first JSON object written
   after the name, else built from the tool's JSON schema: for each required property
   ``prop=value`` (or ``prop: value``) in the text; else, numbers in order for numeric
   properties; else, for a single required string property, the last quoted string or
   capitalised word. Also ``what is the weather in <City>`` calls an offered
   ``get_weather`` that has a ``city`` parameter.
4. **Memory**: ``what is my <thing>?`` / ``what's my <thing>?`` is answered ``Your <thing>
   is <value>.`` from the latest user statement ``my <thing> is <value>`` (case
   insensitive); a message stating facts is acknowledged ``Noted: your <thing> is
   <value>.``
5. **Echo**: ``You said: <text>``.

Long texts are clipped (``CLIP_CHARS``) so that replies stay small for benchmarks.

Tool choice (``reply_with_tool_choice``): ``none`` offers no tools to the rules; a named
tool is always called, with arguments from ``structured_reply``; ``any`` (``required``)
with no call in the reply calls the last offered tool the same way.

Structured output: when a request asks for a JSON Schema (OpenAI ``response_format``
json_schema, Anthropic forced tool), a reply that is not already a JSON object becomes
one through ``structured_reply``: each property ``prop=value`` (or ``prop: value``) in
the last user text, else a default of the property's type (strings get the reply text).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Union

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.json import JSONObject, Message

__all__ = [
    "CLIP_CHARS", "Brain", "BrainReply", "Rule", "ToolCallSpec", "ToolSpec", "message_text",
    "reply_with_tool_choice", "structured_reply",
]

CLIP_CHARS = 2000
"""Longest echoed text or tool result quoted in a reply."""

_MENTION = re.compile(r"\b(?:call|use)\s+([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_WEATHER = re.compile(r"\bwhat(?:'s|’s| is) the weather (?:like )?in ([A-Za-z][\w .'-]*?)\s*[?.!]*\s*$",
                      re.IGNORECASE)
_QUESTION = re.compile(r"\bwhat(?:'s|’s| is)\s+my\s+([\w' -]+?)\s*\?*\s*$", re.IGNORECASE)
_STATEMENT = re.compile(r"\bmy\s+([\w' -]+?)\s+is\s+([^.!?\n]+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']+)'")
_CAPITALISED = re.compile(r"\b[A-Z][\w'-]*")


def message_text(message: Message) -> str:
    """The text of an OpenAI-shaped message (text parts joined; other parts ignored)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def _clip(text: str) -> str:
    return text if len(text) <= CLIP_CHARS else text[:CLIP_CHARS] + "…"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered by the request: its wire name and JSON Schema."""

    name: str
    parameters: JSONObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCallSpec:
    """One tool call of a reply; ``arguments`` is JSON text (possibly invalid on purpose)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BrainReply:
    """What the fake model answers, before a wire format renders it."""

    text: str = ""
    tool_calls: tuple[ToolCallSpec, ...] = ()
    think: str = ""


RuleReply = Union[str, Callable[["re.Match[str]"], str]]  # noqa: UP007 (a runtime alias on 3.10)


@dataclass(frozen=True, slots=True)
class Rule:
    """A user rule: when ``pattern`` matches, answer ``reply`` and/or call tools.

    ``reply`` is literal text or a function of the match. ``tool_calls`` are
    ``(name, arguments)`` pairs, arguments a dict or raw JSON text. ``think`` becomes
    the reply's reasoning text.

    Example:
        >>> Rule(r"capital of France", reply="Paris.").pattern
        'capital of France'
    """

    pattern: str
    _: KW_ONLY
    reply: RuleReply | None = None
    tool_calls: Sequence[tuple[str, JSONObject | str]] | None = None
    think: str | None = None
    match_tool_results: bool = False
    """Also match when the last message is a tool result (its text)."""
    flags: int = re.IGNORECASE

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern, self.flags)
        except re.error as exc:
            raise InvalidArgumentError(
                f"Rule pattern {self.pattern!r} is not a regular expression: {exc}"
            ) from exc
        if self.reply is None and not self.tool_calls and self.think is None:
            raise InvalidArgumentError(f"Rule {self.pattern!r} needs a reply, tool_calls or think")


class Brain:
    """Deterministic replies (see the module docstring); thread-safe."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self._rules: list[Rule] = list(rules)
        self._lock = threading.Lock()

    def add_rule(self, rule: Rule) -> None:
        """Append a user rule (tried after the earlier ones, before the built-ins)."""
        with self._lock:
            self._rules.append(rule)

    def clear_rules(self) -> None:
        """Drop every user rule."""
        with self._lock:
            self._rules.clear()

    def reply(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> BrainReply:
        """The reply to ``messages`` when ``tools`` are offered."""
        last = messages[-1] if messages else {}
        role = last.get("role")
        text = message_text(last)
        with self._lock:
            rules = tuple(self._rules)
        for rule in rules:
            if role == "user" or (role == "tool" and rule.match_tool_results):
                match = re.search(rule.pattern, text, rule.flags)
                if match is not None:
                    return _rule_reply(rule, match, len(messages))
        if role == "tool":
            return BrainReply(text=_tool_results_text(messages))
        if role != "user":
            return BrainReply(text="Hello from the fake model.")
        if tools:
            calls = _tool_calls(text, tools, len(messages))
            if calls:
                return BrainReply(tool_calls=calls)
        question = _QUESTION.search(text)
        if question is not None:
            return BrainReply(text=_recall(messages, _normalise(question.group(1))))
        facts = [(_normalise(t), v.strip()) for t, v in _STATEMENT.findall(text)]
        if facts:
            return BrainReply(text="Noted: " + "; ".join(f"your {t} is {v}" for t, v in facts) + ".")
        return BrainReply(text=f"You said: {_clip(text)}")


def _normalise(thing: str) -> str:
    return " ".join(thing.lower().split())


def _rule_reply(rule: Rule, match: re.Match[str], n_messages: int) -> BrainReply:
    text = "" if rule.reply is None else rule.reply if isinstance(rule.reply, str) else rule.reply(match)
    calls = tuple(
        ToolCallSpec(
            id=f"call_{n_messages + i}", name=name,
            arguments=args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
        )
        for i, (name, args) in enumerate(rule.tool_calls or ())
    )
    return BrainReply(text=text, tool_calls=calls, think=rule.think or "")


def _tool_results_text(messages: Sequence[Message]) -> str:
    results: dict[str, str] = {}
    i = len(messages) - 1
    while i >= 0 and messages[i].get("role") == "tool":
        results.setdefault(str(messages[i].get("tool_call_id")), message_text(messages[i]))
        i -= 1
    calls: list[Any] = (messages[i].get("tool_calls") or []) if i >= 0 else []
    lines = ["Here is what the tools returned:"]
    for call in calls:
        name = (call.get("function") or {}).get("name", "tool")
        lines.append(f"- {name}: {_clip(results.pop(str(call.get('id')), '(no result)'))}")
    lines.extend(f"- {call_id}: {_clip(result)}" for call_id, result in results.items())
    return "\n".join(lines)


def _recall(messages: Sequence[Message], thing: str) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        for stated, value in reversed(_STATEMENT.findall(message_text(message))):
            if _normalise(stated) == thing:
                return f"Your {thing} is {value.strip()}."
    return f"I don't know your {thing} yet."


def _tool_calls(text: str, tools: Sequence[ToolSpec], n_messages: int) -> tuple[ToolCallSpec, ...]:
    offered = {t.name: t for t in tools}
    mentions: list[tuple[ToolSpec, int, int]] = []
    for match in _MENTION.finditer(text):
        name = match.group(1)
        while name not in offered and name and name[-1] in ".:-":
            name = name[:-1]
        if name in offered:
            mentions.append((offered[name], match.start(), match.start(1) + len(name)))
    if not mentions:
        weather = _WEATHER.search(text)
        tool = offered.get("get_weather")
        if weather is None or tool is None or "city" not in (tool.parameters.get("properties") or {}):
            return ()
        args: JSONObject = {"city": weather.group(1).strip()}
        return (ToolCallSpec(id=f"call_{n_messages}", name="get_weather", arguments=json.dumps(args)),)
    calls = []
    for i, (tool, _, end) in enumerate(mentions):
        segment = text[end: mentions[i + 1][1] if i + 1 < len(mentions) else len(text)]
        arguments = _json_object(segment)
        if arguments is None:
            arguments = _schema_arguments(segment, tool.parameters)
        calls.append(ToolCallSpec(id=f"call_{n_messages + i}", name=tool.name,
                                  arguments=json.dumps(arguments, ensure_ascii=False)))
    return tuple(calls)


def _json_object(segment: str) -> JSONObject | None:
    decoder = json.JSONDecoder()
    start = segment.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(segment, start)
        except ValueError:
            start = segment.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = segment.find("{", start + 1)
    return None


def _coerce(raw: str, kind: Any) -> Any:
    if kind == "integer":
        try:
            return int(float(raw))
        except ValueError:
            return raw
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            return raw
        return int(number) if number.is_integer() and "." not in raw else number
    if kind == "boolean":
        return raw.lower() in ("true", "yes", "1", "on")
    return raw


def _schema_arguments(segment: str, schema: JSONObject) -> JSONObject:
    properties: dict[str, Any] = schema.get("properties") or {}
    required = [p for p in schema.get("required") or [] if p in properties]
    args: JSONObject = {}
    for prop in required:
        match = re.search(rf"\b{re.escape(prop)}\s*[=:]\s*(\"[^\"]*\"|'[^']*'|[^\s,;]+)", segment)
        if match is not None:
            args[prop] = _coerce(match.group(1).strip("\"'"), properties[prop].get("type"))
    numeric = [p for p in required if p not in args and properties[p].get("type") in ("integer", "number")]
    for prop, number in zip(numeric, _NUMBER.findall(segment), strict=False):
        args[prop] = _coerce(number, properties[prop].get("type"))
    missing = [p for p in required if p not in args]
    if len(missing) == 1 and properties[missing[0]].get("type", "string") == "string":
        quoted = _QUOTED.findall(segment)
        words = _CAPITALISED.findall(segment)
        if quoted:
            args[missing[0]] = next(q for q in quoted[-1] if q)
        elif words:
            args[missing[0]] = words[-1].rstrip("'")
    return args


_DEFAULTS: dict[str, Any] = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {},
                             "null": None}


def structured_reply(reply_text: str, user_text: str, schema: JSONObject) -> str:
    """``reply_text`` if it is a JSON object, else an object for ``schema`` (module docstring)."""
    try:
        if isinstance(json.loads(reply_text), dict):
            return reply_text
    except ValueError:
        pass
    properties: dict[str, Any] = schema.get("properties") or {}
    out: JSONObject = {}
    for prop, spec in properties.items():
        kind = spec.get("type", "string") if isinstance(spec, dict) else "string"
        kind = kind[0] if isinstance(kind, list) and kind else kind
        match = re.search(rf"\b{re.escape(prop)}\s*[=:]\s*(\"[^\"]*\"|'[^']*'|[^\s,;]+)", user_text)
        if match is not None:
            out[prop] = _coerce(match.group(1).strip("\"'"), kind)
            continue
        enum = spec.get("enum") if isinstance(spec, dict) else None
        out[prop] = enum[0] if enum else _DEFAULTS.get(str(kind), _clip(reply_text))
    return json.dumps(out, ensure_ascii=False)


def reply_with_tool_choice(brain: Brain, messages: Sequence[Message], tools: Sequence[ToolSpec], *,
                           mode: str = "auto", name: str | None = None) -> BrainReply:
    """``brain.reply`` under a tool choice: ``auto``, ``none``, ``any`` or ``tool`` (``name``)."""
    if mode == "none" or not tools:
        return brain.reply(messages, ())
    forced = next((t for t in tools if t.name == name), None) if mode == "tool" else None
    reply = brain.reply(messages, tools if forced is None else [t for t in tools if t is not forced])
    if forced is None and not (mode == "any" and not reply.tool_calls):
        return reply
    target = forced or tools[-1]
    user_text = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    arguments = structured_reply(reply.text, user_text, target.parameters)
    call = ToolCallSpec(f"call_{len(messages)}", target.name, arguments)
    return BrainReply(think=reply.think, tool_calls=(call,))
