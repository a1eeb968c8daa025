"""Anthropic Messages API JSON → ``LLMResponse``: content blocks, usage, stop reasons, SSE.

Pure mapping, no SDK and no I/O. Invariants:
- ``text`` blocks make the text, ``thinking`` blocks the think; ``tool_use`` blocks become
  OpenAI-shaped tool calls (names mapped back with ``from_wire``, ``input`` as JSON text;
  an ``input`` that is not an object is kept as its raw text for the engine to reject).
- The synthetic structured-output tool's input becomes the reply text (JSON) when it is
  the only call; beside real calls it is dropped (the model answers again later).
- ``stop_reason`` maps to the OpenAI vocabulary (``end_turn``/``stop_sequence`` → ``stop``,
  ``tool_use`` → ``tool_calls``, ``max_tokens`` → ``length``, ``refusal`` →
  ``content_filter``); the raw value stays in ``debug["stop_reason"]``.
- ``prompt_tokens`` counts the whole prompt, ``input_tokens + cache_read_input_tokens +
  cache_creation_input_tokens`` (Anthropic's ``input_tokens`` excludes cached tokens),
  so budgets and stats mean the same for every provider; the parts stay in
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens``.
- Streams are assembled by content-block index; tool arguments are the concatenated
  ``partial_json``, normalised like the non-streamed ``input`` when they parse, so a
  streamed and a plain answer are equal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from power_loop.contracts.errors import LLMProviderError
from power_loop.contracts.json import JSONObject
from power_loop.llm.contract import LLMRequest, LLMResponse, LLMStreamChunk, LLMTokenUsage
from power_loop.llm.transports._openai_response import build_response

__all__ = ["STOP_REASONS", "StreamAssembler", "parse_message", "usage_from"]

FromWire = Callable[[str], str] | None
STOP_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length",
    "refusal": "content_filter", "model_context_window_exceeded": "length",
}
_RETRYABLE_ERRORS = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429, "timeout_error": 408}


def _obj(value: Any) -> JSONObject:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_from(usage: JSONObject) -> LLMTokenUsage:
    """Map a Messages API ``usage`` object (see the module docstring for ``prompt_tokens``)."""
    fresh = _int(usage.get("input_tokens"))
    read = _int(usage.get("cache_read_input_tokens"))
    created = _int(usage.get("cache_creation_input_tokens"))
    output = _int(usage.get("output_tokens"))
    known = fresh is not None or read is not None or created is not None
    prompt = (fresh or 0) + (read or 0) + (created or 0) if known else None
    total = None if prompt is None and output is None else (prompt or 0) + (output or 0)
    return LLMTokenUsage(prompt_tokens=prompt, completion_tokens=output, total_tokens=total,
                         cache_read_input_tokens=read, cache_creation_input_tokens=created)


def _arguments(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return value or "{}"
    return "{}" if value is None else json.dumps(value, ensure_ascii=False)


def _normalised(raw: str) -> str:
    """Streamed arguments as the non-streamed ``input`` would be written, when they parse."""
    if not raw.strip():
        return "{}"
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else raw


def _call(call_id: Any, name: str, arguments: str, from_wire: FromWire) -> JSONObject:
    return {"id": str(call_id) if call_id else f"toolu_{os.urandom(12).hex()}", "type": "function",
            "function": {"name": from_wire(name) if from_wire else name, "arguments": arguments}}


def _finish(stop_reason: Any, *, structured: bool) -> str | None:
    if stop_reason is None:
        return None
    if structured:
        return "stop"
    return STOP_REASONS.get(str(stop_reason), str(stop_reason))


def _result(request: LLMRequest, *, texts: list[str], thinks: list[str], calls: list[JSONObject],
            structured: str | None, usage: LLMTokenUsage, stop_reason: Any, model: Any, raw: Any = None,
            chunks: list[LLMStreamChunk] | None = None) -> LLMResponse:
    use_structured = structured is not None and not calls
    text = structured if use_structured and structured is not None else "".join(texts)
    response = build_response(
        request, text=text, think="".join(thinks), raw_text=text, tool_calls=calls, usage=usage,
        finish_reason=_finish(stop_reason, structured=use_structured), model=model, raw_message=raw,
        raw_completion=raw, stream_chunks=chunks,
    )
    response.debug["stop_reason"] = stop_reason
    return response


def parse_message(request: LLMRequest, data: JSONObject, *, from_wire: FromWire,
                  synthetic_tool: str | None) -> LLMResponse:
    """The response for a non-streamed ``message`` object.

    Raises:
        LLMProviderError: (``llm.provider_error``, retryable) no content blocks at all.
    """
    content = data.get("content")
    if not isinstance(content, list) or not content:
        raise LLMProviderError("anthropic endpoint answered without content blocks (overload or filter)",
                               provider="anthropic", retryable=True)
    texts: list[str] = []
    thinks: list[str] = []
    calls: list[JSONObject] = []
    structured: str | None = None
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            thinks.append(str(block.get("thinking") or ""))
        elif kind == "tool_use":
            name = str(block.get("name") or "")
            if synthetic_tool is not None and name == synthetic_tool:
                structured = _arguments(block.get("input"))
            else:
                calls.append(_call(block.get("id"), name, _arguments(block.get("input")), from_wire))
    usage = usage_from(data["usage"]) if isinstance(data.get("usage"), dict) else LLMTokenUsage()
    return _result(request, texts=texts, thinks=thinks, calls=calls, structured=structured, usage=usage,
                   stop_reason=data.get("stop_reason"), model=data.get("model"), raw=data)


def stream_error(data: JSONObject) -> LLMProviderError:
    """The error of an ``error`` event (retryable for overload, API, rate-limit and timeout errors)."""
    error = _obj(data.get("error"))
    kind = str(error.get("type") or "api_error")
    status = _RETRYABLE_ERRORS.get(kind)
    return LLMProviderError(f"anthropic stream reported {kind}: {error.get('message') or data}",
                            provider="anthropic", status_code=status, retryable=status is not None)


class StreamAssembler:
    """Folds Messages API stream events into increments and a final response."""

    def __init__(self, *, request: LLMRequest, from_wire: FromWire, synthetic_tool: str | None,
                 default_model: str | None, keep_raw: bool = True) -> None:
        self.request = request
        self.keep_raw = keep_raw
        """Keep each event's JSON as ``raw_event`` (off in ``complete``: fewer live objects)."""
        self.from_wire = from_wire
        self.synthetic_tool = synthetic_tool
        self.model: Any = default_model
        self.done = False
        self.stop_reason: Any = None
        self.usage: JSONObject = {}
        self.events = 0
        self.texts: list[str] = []
        self.thinks: list[str] = []
        self.kinds: dict[int, str] = {}
        self.call_index: dict[int, int] = {}
        self.ids: dict[int, Any] = {}
        self.names: dict[int, str] = {}
        self.pieces: dict[int, list[str]] = {}
        self.chunks: list[LLMStreamChunk] = []

    def feed(self, data: JSONObject) -> LLMStreamChunk | None:
        """Take one event's ``data``; return the increment it carries, if any.

        Raises:
            LLMProviderError: (``llm.provider_error``) an ``error`` event.
        """
        kind = data.get("type")
        self.events += 1
        if kind == "content_block_delta":
            return self._delta(data)
        if kind == "content_block_start":
            return self._start(data)
        if kind == "message_start":
            message = _obj(data.get("message"))
            if message.get("model"):
                self.model = message["model"]
            if isinstance(message.get("usage"), dict):
                self.usage.update(message["usage"])
        elif kind == "message_delta":
            delta = _obj(data.get("delta"))
            if delta.get("stop_reason") is not None:
                self.stop_reason = delta["stop_reason"]
            if isinstance(data.get("usage"), dict):
                self.usage.update({k: v for k, v in data["usage"].items() if v is not None})
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise stream_error(data)
        return None

    def _start(self, data: JSONObject) -> LLMStreamChunk | None:
        index = _int(data.get("index")) or 0
        block = _obj(data.get("content_block"))
        kind = str(block.get("type") or "")
        self.kinds[index] = kind
        if kind == "tool_use":
            name = str(block.get("name") or "")
            self.ids[index], self.names[index] = block.get("id"), name
            initial = block.get("input")
            self.pieces[index] = [json.dumps(initial, ensure_ascii=False)] if initial else []
            if name != self.synthetic_tool:
                self.call_index[index] = len(self.call_index)
                mapped = self.from_wire(name) if self.from_wire else name
                entry = {"index": self.call_index[index], "id": block.get("id"),
                         "function": {"name": mapped, "arguments": ""}}
                return self._chunk(delta_tool_calls=[entry], raw=data)
        elif kind == "text" and block.get("text"):
            self.texts.append(str(block["text"]))
            return self._chunk(delta_text=str(block["text"]), raw=data)
        elif kind == "thinking" and block.get("thinking"):
            self.thinks.append(str(block["thinking"]))
            return self._chunk(think=str(block["thinking"]), raw=data)
        return None

    def _delta(self, data: JSONObject) -> LLMStreamChunk | None:
        index = _int(data.get("index")) or 0
        delta = _obj(data.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            text = str(delta.get("text") or "")
            self.texts.append(text)
            return self._chunk(delta_text=text, raw=data) if text else None
        if kind == "thinking_delta":
            think = str(delta.get("thinking") or "")
            self.thinks.append(think)
            return self._chunk(think=think, raw=data) if think else None
        if kind == "input_json_delta":
            piece = str(delta.get("partial_json") or "")
            if index not in self.pieces:
                self.pieces[index], self.names[index] = [], ""
            self.pieces[index].append(piece)
            if not piece:
                return None
            if index not in self.call_index:  # the structured-output tool streams as text
                return self._chunk(delta_text=piece, raw=data)
            return self._chunk(delta_tool_calls=[{"index": self.call_index[index], "id": self.ids.get(index),
                                                  "function": {"arguments": piece}}], raw=data)
        return None

    def _chunk(self, *, delta_text: str = "", think: str = "",
               delta_tool_calls: list[JSONObject] | None = None, raw: Any = None) -> LLMStreamChunk:
        chunk = LLMStreamChunk(delta_text=delta_text, think=think, delta_tool_calls=delta_tool_calls,
                               raw_event=raw if self.keep_raw else None)
        self.chunks.append(chunk)
        return chunk

    def response(self) -> LLMResponse:
        """The assembled response.

        Raises:
            LLMProviderError: (``llm.provider_error``, retryable) the stream ended without
                ``message_stop`` and without a stop reason, or carried no content block.
        """
        if not self.done and self.stop_reason is None:
            raise LLMProviderError(
                "anthropic stream ended before completion (no stop_reason, no message_stop)"
                f" after {self.events} event(s)", provider="anthropic", retryable=True)
        if not self.kinds:
            raise LLMProviderError("anthropic stream carried no content blocks (overload or filter)",
                                   provider="anthropic", retryable=True)
        calls: list[JSONObject] = []
        structured: str | None = None
        for index in sorted(self.pieces):
            arguments = _normalised("".join(self.pieces[index]))
            if index in self.call_index:
                calls.append(_call(self.ids.get(index), self.names.get(index, ""), arguments, self.from_wire))
            else:
                structured = arguments
        return _result(self.request, texts=self.texts, thinks=self.thinks, calls=calls, structured=structured,
                       usage=usage_from(self.usage) if self.usage else LLMTokenUsage(),
                       stop_reason=self.stop_reason, model=self.model, chunks=self.chunks)
