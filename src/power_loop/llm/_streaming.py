"""Client-side stand-ins for what a provider did not send: token estimates and deltas.

Used by the transports (a stream that ended without usage), the echo service and
``power_loop.testing.ScriptedLLM``. Invariants: estimates are ``ceil(chars / 4)``, cheap
(one pass over the messages, no serialization) and deterministic; ``split_deltas``
pieces always join back to the original text.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from power_loop.contracts.json import JSONObject, Message
from power_loop.llm.contract import LLMRequest, LLMTokenUsage

__all__ = ["content_text", "estimate_tokens", "estimated_usage", "notify", "split_deltas"]


def estimate_tokens(chars: int) -> int:
    """``ceil(chars / 4)``: the usual rough English-text ratio."""
    return -(-chars // 4)


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or "") for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def _message_chars(message: Message) -> int:
    chars = len(content_text(message.get("content")))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        chars += len(str(function.get("name") or "")) + len(str(function.get("arguments") or ""))
    return chars


def estimated_usage(
    request: LLMRequest,
    *,
    text: str,
    tool_calls: Sequence[JSONObject] = (),
    is_estimated: bool = True,
) -> LLMTokenUsage:
    """Usage estimated from the request's message text and the answer's text and tool calls."""
    prompt_chars = len(request.system_prompt or "") + sum(_message_chars(m) for m in request.messages)
    completion_chars = len(text) + sum(
        len(str((c.get("function") or {}).get("arguments") or "")) for c in tool_calls
    )
    prompt = estimate_tokens(prompt_chars)
    completion = estimate_tokens(completion_chars)
    return LLMTokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        is_estimated=is_estimated,
    )


def split_deltas(text: str, *, pieces: int = 4) -> list[str]:
    """Split ``text`` into at most ``pieces`` deltas at word boundaries where possible."""
    if not text:
        return []
    size = max(1, -(-len(text) // pieces))
    out: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + 1, end + 1)
            if space > start:
                end = space
        out.append(text[start:end])
        start = end
    return out


async def notify(callback: Callable[[Any], Any] | None, value: Any) -> None:
    """Call ``callback(value)``, awaiting the result when the callback is async."""
    if callback is None:
        return
    result = callback(value)
    if result is not None and inspect.isawaitable(result):  # most callbacks are sync: skip the check
        await result
