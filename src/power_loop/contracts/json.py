"""JSON value aliases used at the edges (wire formats, stored rows, tool arguments)."""

from __future__ import annotations

from typing import Any, Union

# A JSON document as Python builds it. ``Any`` at the leaves: mypy cannot express the
# recursive union usefully for callers that index into decoded provider payloads.
JSONValue = Union[str, int, float, bool, None, "list[Any]", "dict[str, Any]"]
JSONObject = dict[str, Any]
Message = dict[str, Any]
"""An OpenAI-shaped chat message: ``{"role", "content", "tool_calls"?, "tool_call_id"?, "name"?}``."""
