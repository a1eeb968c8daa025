"""The OpenAI Chat Completions wire format of the fake server.

``POST /v1/chat/completions`` (also ``/chat/completions``): the body's ``messages`` and
``tools`` go to the ``Brain``; the reply is a ``chat.completion`` object, or with
``"stream": true`` server-sent events: a role chunk, the reasoning and text in several
deltas, tool calls OpenAI-style (a first chunk with index, id, type and name, then
argument fragments by index), a finish-reason chunk, a usage chunk with empty choices
when ``stream_options.include_usage`` is set, then ``data: [DONE]``.
``GET /v1/models`` lists the server's model.

Invariants: every object validates against the ``openai`` SDK's types; ``created`` is a
fixed timestamp and ids derive from the request number, so answers are reproducible.
Usage: ``prompt_tokens = ceil(len(request body without its stream fields) / 4)``,
``completion_tokens = ceil(len(reasoning + text + tool arguments) / 4)``, plus the
server's configured ``cached_tokens`` / ``reasoning_tokens`` details.

Deviations of other OpenAI-compatible servers, on request: ``stream_usage=False`` (no
usage in streams), ``repeat_stream_tool_ids`` (every tool-call chunk repeats the id and
name) and ``response_formats`` (other ``response_format`` types refused with a 400).
``tool_choice`` is played by ``reply_with_tool_choice`` (``required`` = ``any``).
A ``json_schema`` response_format turns a text reply into a matching object
(``structured_reply``).
"""

from __future__ import annotations

import json
from typing import Any

from power_loop.contracts.json import JSONObject
from power_loop.testing.fake_server.rules import (
    BrainReply,
    ToolCallSpec,
    ToolSpec,
    message_text,
    reply_with_tool_choice,
    structured_reply,
)
from power_loop.testing.fake_server.wire import (
    WireCall,
    WireReply,
    estimate_tokens,
    prompt_tokens,
    stream_pieces,
)

__all__ = ["CREATED", "OpenAIWire"]

CREATED = 1_700_000_000
"""The fixed ``created`` timestamp of every object."""

_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    408: ("timeout_error", "timeout"),
    409: ("conflict_error", "conflict"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}
_MALFORMED_ARGUMENTS = '{"malformed": tru'


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class OpenAIWire:
    """Serves the OpenAI Chat Completions API (see the module docstring)."""

    name = "openai"
    post_paths = frozenset({"/v1/chat/completions", "/chat/completions"})

    def handle(self, call: WireCall) -> WireReply:
        """Answer one chat completion request."""
        request = call.json
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error(400, "'messages' must be a non-empty array of messages")
        tools = [
            ToolSpec(str(fn.get("name")), fn.get("parameters") or {})
            for tool in request.get("tools") or ()
            if isinstance(tool, dict) and isinstance(fn := tool.get("function"), dict)
        ]
        response_format = request.get("response_format")
        if isinstance(response_format, dict) and call.response_formats is not None \
                and response_format.get("type") not in call.response_formats:
            return self.error(400, f"response_format type {response_format.get('type')!r} is not supported"
                                   f" by this server: use one of {sorted(call.response_formats)}")
        mode, name = self._tool_choice(request.get("tool_choice"))
        reply = reply_with_tool_choice(call.brain, messages, tools, mode=mode, name=name)
        reply = self._structured(reply, messages, response_format)
        kind = call.fault.kind if call.fault is not None else None
        if kind == "malformed_tool_json":
            name = tools[0].name if tools else "tool"
            first = (reply.tool_calls[0] if reply.tool_calls
                     else ToolCallSpec(f"call_{len(messages)}", name, ""))
            reply = BrainReply(text=reply.text, think=reply.think,
                               tool_calls=(ToolCallSpec(first.id, first.name, _MALFORMED_ARGUMENTS),))
        model = str(request.get("model") or call.model)
        usage = self._usage(call, reply)
        completion_id = f"chatcmpl-fake-{call.sequence}"
        if request.get("stream"):
            options = request.get("stream_options") or {}
            include_usage = (call.stream_usage and isinstance(options, dict)
                             and bool(options.get("include_usage")))
            body = self._events(reply, completion_id, model, usage if include_usage else None, kind,
                                repeat_ids=call.repeat_stream_tool_ids, chunk_chars=call.stream_chunk_chars)
            return WireReply(body=body, content_type="text/event-stream; charset=utf-8")
        completion: JSONObject = {
            "id": completion_id, "object": "chat.completion", "created": CREATED, "model": model,
            "choices": [] if kind == "empty_choices" else [self._choice(reply)],
            "usage": usage, "system_fingerprint": "fp_fake",
        }
        body = _dumps(completion)
        if kind == "truncated_stream":
            body = body[: len(body) // 2]
        return WireReply(body=body)

    def error(self, status: int, message: str, *, retry_after_s: float | None = None) -> WireReply:
        """An OpenAI-style error body ``{"error": {"message", "type", "param", "code"}}``."""
        kind, code = _ERROR_TYPES.get(status, ("server_error", "server_error"))
        headers: list[tuple[str, str]] = []
        if retry_after_s is not None:
            headers.append(("Retry-After", f"{retry_after_s:g}"))
            headers.append(("retry-after-ms", str(round(retry_after_s * 1000))))
        body = _dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
        return WireReply(status=status, body=body, headers=tuple(headers))

    def get(self, path: str, *, model: str) -> WireReply | None:
        """``GET /v1/models``: the server's one model."""
        if path not in ("/v1/models", "/models"):
            return None
        entry = {"id": model, "object": "model", "created": CREATED, "owned_by": "power-loop-fake"}
        return WireReply(body=_dumps({"object": "list", "data": [entry]}))

    @staticmethod
    def _tool_choice(choice: Any) -> tuple[str, str | None]:
        if isinstance(choice, dict):
            function = choice.get("function")
            return "tool", function.get("name") if isinstance(function, dict) else None
        return {"required": "any", "none": "none"}.get(str(choice), "auto"), None

    @staticmethod
    def _structured(reply: BrainReply, messages: list[Any], response_format: Any) -> BrainReply:
        if reply.tool_calls or not isinstance(response_format, dict) \
                or response_format.get("type") != "json_schema":
            return reply
        inner = response_format.get("json_schema")
        schema = inner.get("schema") if isinstance(inner, dict) else None
        if not isinstance(schema, dict):
            return reply
        user_text = next((message_text(m) for m in reversed(messages)
                          if isinstance(m, dict) and m.get("role") == "user"), "")
        return BrainReply(text=structured_reply(reply.text, user_text, schema), think=reply.think)

    @staticmethod
    def _usage(call: WireCall, reply: BrainReply) -> JSONObject:
        prompt = prompt_tokens(call.body)
        chars = len(reply.text) + len(reply.think) + sum(len(c.arguments) for c in reply.tool_calls)
        completion = estimate_tokens(chars)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": min(call.cached_tokens, prompt), "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": call.reasoning_tokens, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _choice(reply: BrainReply) -> JSONObject:
        message: JSONObject = {"role": "assistant", "content": reply.text or None, "refusal": None}
        if reply.think:
            message["reasoning_content"] = reply.think
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in reply.tool_calls
            ]
        finish = "tool_calls" if reply.tool_calls else "stop"
        return {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}

    @staticmethod
    def _events(
        reply: BrainReply, completion_id: str, model: str, usage: JSONObject | None, fault: str | None,
        *, repeat_ids: bool = False, chunk_chars: int | None = None,
    ) -> bytes:
        head = f'{{"id":"{completion_id}","object":"chat.completion.chunk","created":{CREATED},' \
               f'"model":{json.dumps(model)},"system_fingerprint":"fp_fake","choices":'
        events: list[bytes] = []

        def chunk(delta: JSONObject, finish: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            events.append(b"data: " + head.encode() + _dumps([choice]) + b"}\n\n")

        if fault != "empty_choices":
            chunk({"role": "assistant", "content": ""})
            for piece in stream_pieces(reply.think, chunk_chars=chunk_chars):
                chunk({"reasoning_content": piece})
            for piece in stream_pieces(reply.text, chunk_chars=chunk_chars):
                chunk({"content": piece})
            for index, call in enumerate(reply.tool_calls):
                chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                       "function": {"name": call.name, "arguments": ""}}]})
                for piece in stream_pieces(call.arguments, most=3, least=1):
                    if repeat_ids:  # like servers that repeat the id and name on every chunk
                        chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                               "function": {"name": call.name, "arguments": piece}}]})
                    else:
                        chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            if fault == "truncated_stream":
                return b"".join(events[: max(2, len(events) // 2)])
            chunk({}, "tool_calls" if reply.tool_calls else "stop")
        if usage is not None or fault == "empty_choices":
            events.append(b"data: " + head.encode() + b"[]" + (b',"usage":' + _dumps(usage) if usage else b"")
                          + b"}\n\n")
        events.append(b"data: [DONE]\n\n")
        return b"".join(events)
