"""OpenAI Chat Completions JSON → ``LLMResponse``: messages, usage and streamed chunks.

Pure mapping, no SDK and no I/O (the transport in ``openai.py`` does the HTTP).
Invariants: tool names are mapped back with the request's ``from_wire``; tool-call
arguments are kept as the raw text received (malformed JSON included; empty becomes
``"{}"``); streamed tool calls are assembled by ``index``, taking the first non-empty
``id`` and ``name`` (some servers repeat them on every chunk) and concatenating only
the argument fragments; reasoning comes from ``reasoning_content`` (or ``reasoning``),
else from a leading ``<think>…</think>`` block of the text (``raw_text`` keeps it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from power_loop.contracts.errors import LLMProviderError
from power_loop.contracts.json import JSONObject
from power_loop.llm._streaming import estimated_usage
from power_loop.llm.contract import LLMRequest, LLMResponse, LLMStreamChunk, LLMTokenUsage

__all__ = ["StreamAssembler", "build_response", "parse_message", "usage_from"]

FromWire = Callable[[str], str] | None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_from(usage: JSONObject) -> LLMTokenUsage:
    """Map an OpenAI ``usage`` object (plus DeepSeek's cache-hit count)."""
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None
    reasoning = (_int(completion_details.get("reasoning_tokens"))
                 if isinstance(completion_details, dict) else None)
    return LLMTokenUsage(
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        total_tokens=_int(usage.get("total_tokens")),
        cached_tokens=cached,
        prompt_cached_tokens=cached,
        reasoning_tokens=reasoning,
        completion_reasoning_tokens=reasoning,
        cache_hit_tokens=_int(usage.get("prompt_cache_hit_tokens")),
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def _split_think(raw: str) -> tuple[str, str]:
    """``(text, think)`` of a text that may open with a ``<think>…</think>`` block."""
    stripped = raw.lstrip()
    if stripped.startswith("<think>"):
        end = stripped.find("</think>")
        if end != -1:
            return stripped[end + len("</think>"):].lstrip(), stripped[len("<think>"):end].strip()
    return raw, ""


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value or "{}"
    if value is None:
        return "{}"
    return json.dumps(value, ensure_ascii=False)


def _tool_call(call_id: Any, name: Any, arguments: Any, from_wire: FromWire) -> JSONObject:
    wire = str(name or "")
    return {
        "id": str(call_id) if call_id else f"call_{os.urandom(12).hex()}",
        "type": "function",
        "function": {"name": from_wire(wire) if from_wire else wire, "arguments": _arguments(arguments)},
    }


def parse_message(message: JSONObject, from_wire: FromWire) -> tuple[str, str, str, list[JSONObject]]:
    """``(text, think, raw_text, tool_calls)`` of a non-streamed assistant message."""
    raw = _text(message.get("content"))
    think = message.get("reasoning_content") or message.get("reasoning") or ""
    text = raw
    if not think:
        text, think = _split_think(raw)
    calls = []
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            function = call.get("function") or {}
            calls.append(
                _tool_call(call.get("id"), function.get("name"), function.get("arguments"), from_wire)
            )
    return text, str(think), raw, calls


def build_response(
    request: LLMRequest, *, text: str, think: str, raw_text: str, tool_calls: list[JSONObject],
    usage: LLMTokenUsage, finish_reason: Any, model: Any, raw_message: Any = None,
    raw_completion: Any = None, stream_chunks: list[LLMStreamChunk] | None = None,
) -> LLMResponse:
    """The ``LLMResponse``; with ``request.parse_json`` the text is parsed into ``json_data``."""
    json_data: JSONObject = {}
    parse_error = None
    if request.parse_json:
        json_data, parse_error = _parse_json(text)
    return LLMResponse(
        raw_text=raw_text, content_text=text, think=think, tool_calls=tool_calls, token_usage=usage,
        json_data=json_data, raw_json_data=json_data, parse_error=parse_error, raw_message=raw_message,
        raw_completion=raw_completion, stream_chunks=stream_chunks or [],
        finish_reason=None if finish_reason is None else str(finish_reason),
        model=None if model is None else str(model),
    )


def _parse_json(text: str) -> tuple[JSONObject, str | None]:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    try:
        value = json.loads(stripped)
    except ValueError as exc:
        return {}, f"reply is not JSON: {exc}"
    if not isinstance(value, dict):
        return {}, f"reply is JSON but not an object: {type(value).__name__}"
    return value, None


class StreamAssembler:
    """Folds streamed ``chat.completion.chunk`` objects into increments and a response."""

    def __init__(self, *, request: LLMRequest, from_wire: FromWire, default_model: str | None,
                 keep_raw: bool = True) -> None:
        self.request = request
        self.keep_raw = keep_raw
        """Keep each event's JSON as ``raw_event`` (off in ``complete``: fewer live objects)."""
        self.from_wire = from_wire
        self.model = default_model
        self.done = False
        self.saw_choice = False
        self.finish_reason: str | None = None
        self.usage: JSONObject | None = None
        self.events = 0
        self.text: list[str] = []
        self.think: list[str] = []
        self.arguments: dict[int, list[str]] = {}
        self.call_ids: dict[int, str] = {}
        self.call_names: dict[int, str] = {}
        self.chunks: list[LLMStreamChunk] = []

    def feed(self, data: JSONObject) -> LLMStreamChunk | None:
        """Take one event; return the increment it carries, if any."""
        if "[DONE]" in data:
            self.done = True
            return None
        self.events += 1
        if isinstance(data.get("model"), str) and data["model"]:
            self.model = data["model"]
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        choices = data.get("choices") or ()
        first = choices[0] if type(choices) is list and choices else None
        if type(first) is dict and first.get("index", 0) == 0:  # the usual shape: one choice
            choice: JSONObject | None = first
        else:
            choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
        if choice is None:
            return None
        self.saw_choice = True
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta") or {}
        text = _text(delta.get("content"))
        think = delta.get("reasoning_content") or delta.get("reasoning") or ""
        raw_calls = delta.get("tool_calls")
        if text:
            self.text.append(text)
        if think:
            self.think.append(str(think))
        mapped = self._feed_calls(raw_calls) if raw_calls else None
        if not (text or think or mapped):
            return None
        chunk = LLMStreamChunk(delta_text=text, think=str(think), delta_tool_calls=mapped,
                               raw_event=data if self.keep_raw else None)
        self.chunks.append(chunk)
        return chunk

    def _feed_calls(self, raw_calls: Any) -> list[JSONObject]:
        mapped = []
        for position, call in enumerate(raw_calls):
            if not isinstance(call, dict):
                continue
            index = call["index"] if isinstance(call.get("index"), int) else position
            function = call.get("function") or {}
            if call.get("id") and index not in self.call_ids:
                self.call_ids[index] = str(call["id"])
            name = function.get("name")
            if name and index not in self.call_names:
                self.call_names[index] = str(name)
            arguments = function.get("arguments")
            pieces = self.arguments.setdefault(index, [])
            if arguments:
                pieces.append(arguments if isinstance(arguments, str) else json.dumps(arguments))
            entry: JSONObject = {"index": index, "id": self.call_ids.get(index),
                                 "function": {"arguments": arguments or ""}}
            if name:
                entry["function"]["name"] = self.from_wire(str(name)) if self.from_wire else str(name)
            mapped.append(entry)
        return mapped

    def tool_calls(self) -> list[JSONObject]:
        """The assembled tool calls, in index order."""
        return [
            _tool_call(self.call_ids.get(i), self.call_names.get(i), "".join(pieces), self.from_wire)
            for i, pieces in sorted(self.arguments.items())
        ]

    def response(self) -> LLMResponse:
        """The assembled response.

        Raises:
            LLMProviderError: (``llm.provider_error``, retryable) the stream ended with
                neither a finish reason nor ``[DONE]``, or carried no choice at all.
        """
        if not self.done and self.finish_reason is None:
            raise LLMProviderError(
                f"openai-compatible stream ended before completion (no finish_reason, no [DONE])"
                f" after {self.events} event(s)", provider="openai", retryable=True,
            )
        if not self.saw_choice:
            raise LLMProviderError("openai-compatible stream carried no choices (content filter or overload)",
                                   provider="openai", retryable=True)
        raw = "".join(self.text)
        think = "".join(self.think)
        text = raw
        if not think:
            text, think = _split_think(raw)
        calls = self.tool_calls()
        usage = (usage_from(self.usage) if self.usage is not None
                 else estimated_usage(self.request, text=raw, tool_calls=calls))
        return build_response(
            self.request, text=text, think=think, raw_text=raw, tool_calls=calls, usage=usage,
            finish_reason=self.finish_reason, model=self.model, stream_chunks=self.chunks,
        )
