"""AgentLoopConfig: the loop's frozen, validated settings.

Lives in the engine layer (the engine reads it; the loop re-exports it), so imports keep
pointing down. Every invalid field is reported at once in one ``InvalidArgumentError``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.json import JSONObject
from power_loop.llm.retry import LLMRetryPolicy

DEFAULT_AGENT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Use the available tools when they help, and answer concisely."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoopConfig:
    """How a ``StatefulAgentLoop`` runs each send (API.md §3)."""

    system_prompt: str | None = None
    """Loop-level prompt; None → ``DEFAULT_AGENT_SYSTEM_PROMPT``."""
    max_rounds: int = 24
    """LLM rounds per send (>= 1)."""
    temperature: float | None = 0.0
    """None → not sent."""
    max_tokens: int | None = 8000
    """Per-call completion cap sent to the provider (> 0)."""
    context_budget_tokens: int | None = None
    """What the fold trigger measures against; None → ``max_tokens``."""
    model: str | None = None
    """Model override on every request of the loop."""
    response_format: JSONObject | None = None
    """OpenAI-style ``response_format`` forwarded on every agent call."""
    output_schema: Any = None
    """``{"name", "schema"}`` (or a StructuredOutputSpec); structured output arrives with its issue."""
    max_tokens_per_run: int | None = None
    """Hard per-send budget on real prompt+completion tokens, checked at round boundaries."""
    retry_policy: LLMRetryPolicy | None = None
    """The one retry layer; None → the service's ``retry_policy`` attribute, else the default."""
    lease_wait_s: float = 30.0
    """How long a send waits for another process's lease on the same session."""
    inject_tool_descriptions: bool = True
    """Append a catalog of the offered tools to the system prompt."""
    tool_catalog_header: str = "# Available Tools"
    tool_timeout_s: float | None = 300.0
    """Default per-call tool timeout (a ``ToolDefinition.timeout_s`` wins); None = no limit."""
    max_tool_output_chars: int = 50_000
    """Tool results longer than this are truncated with a marker."""
    max_parallel_tool_calls: int = 8
    """How many tool calls of one assistant turn run at once (>= 1)."""
    stream: bool | None = None
    """Stream LLM calls: True, False, or None = only when someone subscribes to stream events."""
    tool_choice: str | JSONObject | None = None
    """Forwarded with tools: ``"auto"``, ``"none"``, ``"required"`` or a provider tool-choice dict."""
    round_limit_note: str = (
        "You have used all {max_rounds} tool rounds available for this request. "
        "Do not call any more tools; answer now with what you have."
    )
    """User note before the final tool-free call when ``max_rounds`` is exhausted."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.max_rounds, int) or self.max_rounds < 1:
            problems.append(f"max_rounds must be an integer >= 1, got {self.max_rounds!r}")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens <= 0):
            problems.append(f"max_tokens must be a positive integer or None, got {self.max_tokens!r}")
        if self.context_budget_tokens is not None and self.context_budget_tokens <= 0:
            problems.append(f"context_budget_tokens must be > 0 or None, got {self.context_budget_tokens!r}")
        if self.max_tokens_per_run is not None and self.max_tokens_per_run <= 0:
            problems.append(f"max_tokens_per_run must be > 0 or None, got {self.max_tokens_per_run!r}")
        if self.temperature is not None and not 0.0 <= float(self.temperature) <= 2.0:
            problems.append(f"temperature must be between 0 and 2 or None, got {self.temperature!r}")
        if self.lease_wait_s < 0:
            problems.append(f"lease_wait_s must be >= 0, got {self.lease_wait_s!r}")
        if self.tool_timeout_s is not None and self.tool_timeout_s <= 0:
            problems.append(f"tool_timeout_s must be > 0 or None, got {self.tool_timeout_s!r}")
        if self.max_tool_output_chars < 100:
            problems.append(f"max_tool_output_chars must be >= 100, got {self.max_tool_output_chars!r}")
        if self.max_parallel_tool_calls < 1:
            problems.append(f"max_parallel_tool_calls must be >= 1, got {self.max_parallel_tool_calls!r}")
        if self.output_schema is not None and self.response_format is not None:
            problems.append("set output_schema or response_format, not both")
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            problems.append(f"system_prompt must be a string or None, got {type(self.system_prompt).__name__}")
        if problems:
            raise InvalidArgumentError("invalid AgentLoopConfig: " + "; ".join(problems))

    def with_changes(self, **changes: Any) -> AgentLoopConfig:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)
