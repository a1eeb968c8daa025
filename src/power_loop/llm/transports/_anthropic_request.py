"""Provider-neutral request → Anthropic Messages API body: messages, tools, tool choice.

Pure mapping, no SDK and no I/O. Invariants:
- The system prompt and every ``system`` message (in order) are joined into ``system``.
- Assistant ``tool_calls`` become ``tool_use`` blocks whose ``input`` is the parsed
  arguments; arguments that are not a JSON object are sent as ``{}`` (the tool result
  that answered them already tells the model what was wrong).
- ``tool`` messages become ``tool_result`` blocks of a user turn; consecutive turns of
  one role are merged (parallel tool results share one user turn), so roles alternate.
- Empty text is never sent (the API refuses empty text blocks); a turn left empty is dropped.
- Content parts: ``text`` as is, ``image_url`` → ``image`` (base64 or url source),
  ``file`` with a PDF data URL → ``document``; any other part (an Anthropic block given
  directly) passes through unchanged.
- Registry tool names go out as legal wire names; the caller's dicts are never mutated.
- ``response_format`` json_schema becomes a synthetic tool whose ``input_schema`` is the
  schema. Without other tools (or with ``tool_choice="none"``) it is forced; beside other
  tools, ``tool_choice`` becomes ``any`` so the model either calls a tool or answers
  through the synthetic one. ``json_object`` adds an instruction to ``system``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from power_loop.contracts.json import JSONObject, Message
from power_loop.llm.contract import LLMRequest
from power_loop.llm.tool_names import ToolNameMap

__all__ = ["JSON_OBJECT_INSTRUCTION", "RequestParts", "TurnMemo", "build_request_parts"]

JSON_OBJECT_INSTRUCTION = "Reply with a single JSON object and no other text."
_CHOICE_KEYWORDS: dict[str, JSONObject] = {
    "auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}, "any": {"type": "any"},
}


class RequestParts:
    """The mapped pieces of one request (``system`` None when there is none)."""

    __slots__ = ("messages", "synthetic_tool", "system", "tool_choice", "tools")

    def __init__(self, *, system: str | None, messages: list[JSONObject], tools: list[JSONObject] | None,
                 tool_choice: JSONObject | None, synthetic_tool: str | None) -> None:
        self.system = system
        self.messages = messages
        self.tools = tools
        self.tool_choice = tool_choice
        self.synthetic_tool = synthetic_tool
        """Name of the structured-output tool, whose input is the reply text."""


def _obj(value: Any) -> JSONObject:
    return value if isinstance(value, dict) else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _data_url(url: str) -> tuple[str, str] | None:
    """``(media type, base64 data)`` of a ``data:<type>;base64,<data>`` URL."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[: -len(";base64")] or "application/octet-stream", data


def _part(part: Any) -> JSONObject | None:
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind == "text":
        return part if str(part.get("text") or "").strip() else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            return None
        inline = _data_url(url)
        if inline is not None:
            return {"type": "image", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}}
        return {"type": "image", "source": {"type": "url", "url": url}}
    if kind == "file":
        file = _obj(part.get("file"))
        inline = _data_url(str(file.get("file_data") or ""))
        if inline is not None and inline[0] == "application/pdf":
            block: JSONObject = {"type": "document",
                                 "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}}
            if file.get("filename"):
                block["title"] = str(file["filename"])
            return block
        return {"type": "text", "text": f"[file {file.get('filename') or file.get('file_id') or ''} not sent:"
                                        " only PDF data URLs are supported]"}
    return part


def _blocks(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if isinstance(content, list):
        return [b for b in (_part(p) for p in content) if b is not None]
    return []


def _content(content: Any) -> str | list[JSONObject]:
    """A string kept as it is (``""`` when blank), else the mapped blocks."""
    if isinstance(content, str):
        return content if content.strip() else ""
    return _blocks(content)


def _tool_input(arguments: Any) -> JSONObject:
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _assistant_blocks(message: Message, to_wire: Callable[[str], str]) -> str | list[JSONObject]:
    content = message.get("content")
    calls = message.get("tool_calls")
    if not calls:
        return _content(content)
    blocks = _blocks(content)
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = _obj(call.get("function"))
        blocks.append({"type": "tool_use", "id": str(call.get("id") or ""),
                       "name": to_wire(str(function.get("name") or "")),
                       "input": _tool_input(function.get("arguments"))})
    return blocks


def _tool_result(message: Message) -> JSONObject:
    block: JSONObject = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id") or "")}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif isinstance(content, list):
        parts = _blocks(content)
        if parts:
            block["content"] = parts
    elif content is not None:
        block["content"] = json.dumps(content, ensure_ascii=False)
    return block


def _wire_tools(tools: list[JSONObject], to_wire: Callable[[str], str]) -> list[JSONObject]:
    out: list[JSONObject] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            out.append(tool)  # already in Anthropic shape
            continue
        wire: JSONObject = {"name": to_wire(str(function.get("name") or ""))}
        if function.get("description"):
            wire["description"] = function["description"]
        wire["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        out.append(wire)
    return out


def _wire_choice(choice: str | JSONObject | None, to_wire: Callable[[str], str]) -> JSONObject | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        keyword = _CHOICE_KEYWORDS.get(choice)
        return dict(keyword) if keyword is not None else {"type": "tool", "name": to_wire(choice)}
    if choice.get("type") == "function":
        function = _obj(choice.get("function"))
        return {"type": "tool", "name": to_wire(str(function.get("name") or ""))}
    if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        return {**choice, "name": to_wire(choice["name"])}
    return choice


def _synthetic(response_format: JSONObject, taken: set[str]) -> JSONObject | None:
    inner = response_format.get("json_schema")
    if response_format.get("type") != "json_schema" or not isinstance(inner, dict):
        return None
    schema = inner.get("schema") if isinstance(inner.get("schema"), dict) else {"type": "object"}
    name = str(inner.get("name") or "structured_output")
    while name in taken:
        name += "_output"
    description = inner.get("description") or (
        f"Give your final answer by calling this tool: its input is the {name} object.")
    return {"name": name, "description": description, "input_schema": schema}


def _convert(message: Message, to_wire: Callable[[str], str]) -> tuple[str, str | list[JSONObject]]:
    """``(role, content)`` of one message; role ``system`` contributes to ``system``."""
    role = message.get("role")
    if role == "system":
        return "system", _text_of(message.get("content"))
    if role == "tool":
        return "user", [_tool_result(message)]
    if role == "assistant":
        return "assistant", _assistant_blocks(message, to_wire)
    return "user", _content(message.get("content"))


_Entry = tuple[Message, Any, Any, Any, str, JSONObject]
_Prefix = tuple[Message, Message, int, list[JSONObject], list[str], str, Any, str | None]
"""(first message, last message, count, turns, system parts, last role, name map, system prompt)."""


class TurnMemo:
    """Per-message conversions reused across calls (histories grow by appending).

    An entry is used only while the message is the same object with the same
    ``content`` and ``tool_calls`` objects and the same name map, so a replaced or
    edited message is converted again. Converted turns are shared between calls and
    never mutated (merging builds a new turn).
    """

    __slots__ = ("entries", "max_entries", "prefixes")

    def __init__(self, max_entries: int = 50_000) -> None:
        self.entries: dict[int, _Entry] = {}
        self.max_entries = max_entries
        self.prefixes: dict[int, _Prefix] = {}
        """Per history (keyed by its first message): the state after its first ``count``
        messages, so an append-only history (``LLMRequest.history_wire_safe``) is walked
        from where the previous call stopped, not from the start."""

    def store(self, message: Message, name_map: ToolNameMap | None, to_wire: Callable[[str], str]) -> _Entry:
        role, content = _convert(message, to_wire)
        entry = (message, message.get("content"), message.get("tool_calls"), name_map, role,
                 {"role": role, "content": content})
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[id(message)] = entry
        return entry


def _merged(before: JSONObject, content: str | list[JSONObject]) -> JSONObject:
    head = before["content"]
    blocks = (_blocks(head) if isinstance(head, str) else list(head))
    blocks.extend(_blocks(content) if isinstance(content, str) else content)
    return {"role": before["role"], "content": blocks}


def _resume(memo: TurnMemo, messages: list[Message], name_map: ToolNameMap | None,
            system_prompt: str | None) -> tuple[int, list[JSONObject], list[str], str]:
    """Where the previous call on this history stopped: (messages done, turns, system
    parts, last role); ``(0, [], [], "")`` when it cannot be reused."""
    if not messages:
        return 0, [], [], ""
    prefix = memo.prefixes.get(id(messages[0]))
    if prefix is None:
        return 0, [], [], ""
    first, last, count, turns, system, last_role, mapped, prompt = prefix
    if (first is not messages[0] or mapped is not name_map or prompt != system_prompt or count > len(messages)
            or messages[count - 1] is not last):
        return 0, [], [], ""
    return count, list(turns), list(system), last_role


def build_request_parts(request: LLMRequest, name_map: ToolNameMap | None,
                        memo: TurnMemo | None = None) -> RequestParts:
    """Map ``request`` to the Messages API's ``system``, ``messages``, ``tools`` and ``tool_choice``."""
    to_wire: Callable[[str], str] = name_map.to_wire if name_map is not None else (lambda name: name)
    memo = memo if memo is not None else TurnMemo()
    entries, store = memo.entries, memo.store
    messages = request.messages
    resumable = request.history_wire_safe and type(messages) is list
    done, turns, system, last_role = (
        _resume(memo, messages, name_map, request.system_prompt) if resumable else (0, [], [], ""))
    if not done:
        system = [request.system_prompt] if request.system_prompt else []
    for message in messages[done:] if done else messages:  # the hot loop of long histories: keep it lean
        entry = entries.get(id(message))
        if entry is None or entry[0] is not message or entry[1] is not message.get("content") \
                or entry[2] is not message.get("tool_calls") or entry[3] is not name_map:
            entry = store(message, name_map, to_wire)
        role, turn = entry[4], entry[5]
        if role == "system":
            if turn["content"]:
                system.append(str(turn["content"]))
        elif not turn["content"]:
            continue
        elif role == last_role:
            turns[-1] = _merged(turns[-1], turn["content"])
        else:
            turns.append(turn)
            last_role = role
    if resumable and messages:
        if len(memo.prefixes) >= 512:
            memo.prefixes.clear()
        memo.prefixes[id(messages[0])] = (messages[0], messages[-1], len(messages), list(turns), list(system),
                                          last_role, name_map, request.system_prompt)
    tools = _wire_tools(request.tools, to_wire) if request.tools else None
    choice = _wire_choice(request.tool_choice, to_wire) if tools else None
    synthetic_name: str | None = None
    response_format = request.response_format
    if response_format:
        synthetic = _synthetic(response_format, {str(t.get("name")) for t in tools or ()})
        if synthetic is not None:
            synthetic_name = synthetic["name"]
            if tools and (choice is None or choice.get("type") not in ("none",)):
                tools = [*tools, synthetic]
                if choice is None or choice.get("type") == "auto":
                    choice = {"type": "any"}
            else:
                tools = [synthetic]
                choice = {"type": "tool", "name": synthetic_name}
        elif response_format.get("type") == "json_object":
            system.append(JSON_OBJECT_INSTRUCTION)
    return RequestParts(system="\n\n".join(system) if system else None, messages=turns, tools=tools,
                        tool_choice=choice, synthetic_tool=synthetic_name)
