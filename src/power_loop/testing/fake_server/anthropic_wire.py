"""The Anthropic Messages API wire format of the fake server.

``POST /v1/messages`` (also ``/messages``): ``system``, ``messages`` (text, image,
document, ``tool_use`` and ``tool_result`` blocks) and ``tools`` are turned into the
OpenAI-shaped conversation the ``Brain`` reads — the same messages the OpenAI wire would
hand it, so a scripted conversation gets the same replies and tool-call ids on both
wires. The reply is a ``message`` object, or with ``"stream": true`` server-sent events:
``message_start``, per content block ``content_block_start`` / ``content_block_delta``
(``thinking_delta`` + ``signature_delta``, ``text_delta``, ``input_json_delta``) /
``content_block_stop``, then ``message_delta`` (stop reason, output tokens) and
``message_stop``. Errors are ``{"type": "error", "error": {"type", "message"}}``.

``tool_choice`` (``auto``, ``any``, ``tool``, ``none``) is played by
``reply_with_tool_choice``: with ``any`` the last offered tool is the fallback, which is
where the transports put the structured-output tool.

Usage: of ``prompt_tokens(body)``, ``cache_read_input_tokens`` is the server's
``cached_tokens`` and ``cache_creation_input_tokens`` its ``cache_creation_tokens``;
``input_tokens`` is the rest (as Anthropic counts). Every object validates against the
``anthropic`` SDK's types.
"""

from __future__ import annotations

import json
from typing import Any

from power_loop.contracts.json import JSONObject, Message
from power_loop.testing.fake_server.rules import (
    BrainReply,
    ToolCallSpec,
    ToolSpec,
    reply_with_tool_choice,
)
from power_loop.testing.fake_server.wire import (
    WireCall,
    WireReply,
    estimate_tokens,
    prompt_tokens,
    stream_pieces,
)

__all__ = ["AnthropicWire", "brain_messages"]

_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    529: "overloaded_error",
}
_MALFORMED_ARGUMENTS = '{"malformed": tru'
_SIGNATURE = "ZmFrZS1zaWduYXR1cmU="


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text") or "") for b in content
                       if isinstance(b, dict) and b.get("type") == "text")
    return ""


def brain_messages(request: JSONObject) -> list[Message]:
    """The OpenAI-shaped conversation of a Messages API request body (system first)."""
    out: list[Message] = []
    system = _block_text(request.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for message in request.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        blocks = [b for b in content or () if isinstance(b, dict)]
        if role == "assistant":
            calls = [{"id": b.get("id"), "type": "function",
                      "function": {"name": b.get("name"),
                                   "arguments": json.dumps(b.get("input"), ensure_ascii=False)}}
                     for b in blocks if b.get("type") == "tool_use"]
            reply: Message = {"role": "assistant", "content": _block_text(blocks) or None}
            if calls:
                reply["tool_calls"] = calls
            out.append(reply)
            continue
        parts: list[JSONObject] = []
        for block in blocks:
            if block.get("type") == "tool_result":
                out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                            "content": _block_text(block.get("content"))})
            elif block.get("type") == "text":
                parts.append({"type": "text", "text": block.get("text")})
            else:
                parts.append(block)
        if parts:
            out.append({"role": "user", "content": parts})
    return out


class AnthropicWire:
    """Serves the Anthropic Messages API (see the module docstring)."""

    name = "anthropic"
    post_paths = frozenset({"/v1/messages", "/messages"})

    def handle(self, call: WireCall) -> WireReply:
        """Answer one Messages API request."""
        request = call.json
        if not isinstance(request.get("messages"), list) or not request["messages"]:
            return self.error(400, "messages: at least one message is required")
        if not isinstance(request.get("max_tokens"), int):
            return self.error(400, "max_tokens: Field required")
        tools = [ToolSpec(str(t.get("name")), t.get("input_schema") or {})
                 for t in request.get("tools") or () if isinstance(t, dict)]
        messages = brain_messages(request)
        reply = self._reply(call, messages, tools, request.get("tool_choice"))
        kind = call.fault.kind if call.fault is not None else None
        model = str(request.get("model") or call.model)
        malformed = ToolCallSpec(f"call_{len(messages)}", tools[0].name if tools else "tool", "") \
            if kind == "malformed_tool_json" else None
        blocks = [] if kind == "empty_choices" else self._blocks(reply, malformed=malformed)
        stop_reason = "tool_use" if reply.tool_calls else "end_turn"
        usage = self._usage(call, reply)
        message_id = f"msg_fake_{call.sequence}"
        if request.get("stream"):
            body = self._events(blocks, message_id, model, stop_reason, usage, kind,
                                chunk_chars=call.stream_chunk_chars)
            return WireReply(body=body, content_type="text/event-stream; charset=utf-8")
        message: JSONObject = {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": stop_reason, "stop_sequence": None, "usage": usage,
        }
        body = _dumps(message)
        if kind == "truncated_stream":
            body = body[: len(body) // 2]
        return WireReply(body=body)

    def error(self, status: int, message: str, *, retry_after_s: float | None = None) -> WireReply:
        """An Anthropic-style error body ``{"type": "error", "error": {"type", "message"}}``."""
        headers: list[tuple[str, str]] = []
        if retry_after_s is not None:
            headers.append(("Retry-After", f"{retry_after_s:g}"))
            headers.append(("retry-after-ms", str(round(retry_after_s * 1000))))
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        body = _dumps({"type": "error", "error": {"type": kind, "message": message}})
        return WireReply(status=status, body=body, headers=tuple(headers))

    def get(self, path: str, *, model: str) -> WireReply | None:
        """No GET routes of its own (``/v1/models`` is answered in the OpenAI shape)."""
        return None

    # -- replies ------------------------------------------------------------------------
    @staticmethod
    def _reply(call: WireCall, messages: list[Message], tools: list[ToolSpec], choice: Any) -> BrainReply:
        choice = choice if isinstance(choice, dict) else {}
        return reply_with_tool_choice(call.brain, messages, tools, mode=str(choice.get("type") or "auto"),
                                      name=choice.get("name"))

    @staticmethod
    def _blocks(reply: BrainReply, *, malformed: ToolCallSpec | None) -> list[JSONObject]:
        blocks: list[JSONObject] = []
        if reply.think:
            blocks.append({"type": "thinking", "thinking": reply.think, "signature": _SIGNATURE})
        if reply.text or not reply.tool_calls:
            blocks.append({"type": "text", "text": reply.text})
        calls = reply.tool_calls
        if malformed is not None:
            first = calls[0] if calls else malformed
            calls = (ToolCallSpec(first.id, first.name, _MALFORMED_ARGUMENTS),)
        for call in calls:
            try:
                tool_input: Any = json.loads(call.arguments) if call.arguments else {}
            except ValueError:
                tool_input = call.arguments  # invalid on purpose: sent as a string
            blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input})
        return blocks

    @staticmethod
    def _usage(call: WireCall, reply: BrainReply) -> JSONObject:
        prompt = prompt_tokens(call.body)
        read = min(call.cached_tokens, prompt)
        created = min(call.cache_creation_tokens, prompt - read)
        chars = len(reply.text) + len(reply.think) + sum(len(c.arguments) for c in reply.tool_calls)
        return {"input_tokens": prompt - read - created, "output_tokens": estimate_tokens(chars),
                "cache_creation_input_tokens": created, "cache_read_input_tokens": read}

    @staticmethod
    def _events(blocks: list[JSONObject], message_id: str, model: str, stop_reason: str, usage: JSONObject,
                fault: str | None, *, chunk_chars: int | None = None) -> bytes:
        events: list[bytes] = []

        def event(data: JSONObject) -> None:
            events.append(b"event: " + str(data["type"]).encode() + b"\ndata: " + _dumps(data) + b"\n\n")

        start_usage = {**usage, "output_tokens": 1}
        event({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
        event({"type": "ping"})
        for index, block in enumerate(blocks):
            kind = block["type"]
            if kind == "thinking":
                event({"type": "content_block_start", "index": index,
                       "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                for piece in stream_pieces(block["thinking"], chunk_chars=chunk_chars):
                    event({"type": "content_block_delta", "index": index,
                           "delta": {"type": "thinking_delta", "thinking": piece}})
                event({"type": "content_block_delta", "index": index,
                       "delta": {"type": "signature_delta", "signature": block["signature"]}})
            elif kind == "text":
                event({"type": "content_block_start", "index": index,
                       "content_block": {"type": "text", "text": ""}})
                for piece in stream_pieces(block["text"], chunk_chars=chunk_chars):
                    event({"type": "content_block_delta", "index": index,
                           "delta": {"type": "text_delta", "text": piece}})
            else:
                event({"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                raw = block["input"] if isinstance(block["input"], str) else json.dumps(block["input"],
                                                                                          ensure_ascii=False)
                for piece in stream_pieces(raw, most=3, least=1):
                    event({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": piece}})
            event({"type": "content_block_stop", "index": index})
        if fault == "truncated_stream":
            return b"".join(events[: max(2, len(events) // 2)])
        event({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
               "usage": {"output_tokens": usage["output_tokens"]}})
        event({"type": "message_stop"})
        return b"".join(events)
