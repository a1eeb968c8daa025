"""AgentLoopConfig: the loop's frozen, validated settings.

Lives in the engine layer (the engine reads it; the loop re-exports it), so imports keep
pointing down. Every invalid field is reported at once in one ``InvalidArgumentError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.json import JSONObject
from power_loop.llm.retry import LLMRetryPolicy
from power_loop.llm.structured import StructuredOutputSpec

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
    output_schema: StructuredOutputSpec | JSONObject | None = None
    """A ``StructuredOutputSpec`` or ``{"name", "schema"}`` dict (stored as a spec): derives
    ``response_format``; the final text is parsed into ``StatefulResult.structured``."""
    max_tokens_per_run: int | None = None
    """Hard per-send budget on real prompt+completion tokens, checked at round boundaries."""
    retry_policy: LLMRetryPolicy | None = None
    """The one retry layer; None → the service's ``retry_policy`` attribute, else the default."""
    lease_wait_s: float = 30.0
    """How long a send waits for another process's lease on the same session."""
    lease_ttl_s: float = 60.0
    """How long a send's session lease lasts without renewal: the longest another host waits
    for a holder that died (on the same host a dead holder is taken over at once)."""
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
    """Forwarded with tools: ``"auto"``, ``"none"``, ``"required"``, a tool name (forces that
    tool) or a provider tool-choice dict; each transport maps it to its provider. A choice
    that forces a call holds until the first tool round of a send; later rounds use the
    provider's default (auto), so a forced tool cannot loop."""
    round_limit_note: str = (
        "You have used all {max_rounds} tool rounds available for this request. "
        "Do not call any more tools; answer now with what you have."
    )
    """User note before the final tool-free call when ``max_rounds`` is exhausted."""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise InvalidArgumentError("invalid AgentLoopConfig: " + "; ".join(problems))
        if isinstance(self.output_schema, dict):
            object.__setattr__(self, "output_schema", StructuredOutputSpec.coerce(self.output_schema))

    def with_changes(self, **changes: Any) -> AgentLoopConfig:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _problems(cfg: AgentLoopConfig) -> list[str]:
    """Every problem of ``cfg``, each naming the field, the rule and the value given."""
    problems: list[str] = []

    def need(ok: bool, message: str, value: object) -> None:
        if not ok:
            problems.append(f"{message}, got {value!r}")

    def optional_str(name: str, value: object) -> None:
        need(value is None or isinstance(value, str), f"{name} must be a string or None", value)

    optional_str("system_prompt", cfg.system_prompt)
    need(_is_int(cfg.max_rounds) and cfg.max_rounds >= 1, "max_rounds must be an integer >= 1",
         cfg.max_rounds)
    need(cfg.temperature is None or (_is_number(cfg.temperature) and 0.0 <= cfg.temperature <= 2.0),
         "temperature must be a number between 0 and 2 or None", cfg.temperature)
    for name in ("max_tokens", "context_budget_tokens", "max_tokens_per_run"):
        value = getattr(cfg, name)
        need(value is None or (_is_int(value) and value > 0), f"{name} must be an integer > 0 or None", value)
    optional_str("model", cfg.model)
    need(cfg.response_format is None or isinstance(cfg.response_format, dict),
         "response_format must be a dict or None", cfg.response_format)
    schema = cfg.output_schema
    if schema is not None:
        try:
            StructuredOutputSpec.coerce(schema)
        except InvalidArgumentError as exc:
            problems.append(f"output_schema: {exc}")
    if schema is not None and cfg.response_format is not None:
        problems.append("set output_schema or response_format, not both")
    need(cfg.retry_policy is None or isinstance(cfg.retry_policy, LLMRetryPolicy),
         "retry_policy must be an LLMRetryPolicy or None", cfg.retry_policy)
    need(_is_number(cfg.lease_wait_s) and cfg.lease_wait_s >= 0, "lease_wait_s must be a number >= 0",
         cfg.lease_wait_s)
    need(_is_number(cfg.lease_ttl_s) and cfg.lease_ttl_s >= 1, "lease_ttl_s must be a number >= 1",
         cfg.lease_ttl_s)
    need(isinstance(cfg.inject_tool_descriptions, bool), "inject_tool_descriptions must be a bool",
         cfg.inject_tool_descriptions)
    need(isinstance(cfg.tool_catalog_header, str), "tool_catalog_header must be a string",
         cfg.tool_catalog_header)
    need(cfg.tool_timeout_s is None or (_is_number(cfg.tool_timeout_s) and cfg.tool_timeout_s > 0),
         "tool_timeout_s must be a number > 0 or None", cfg.tool_timeout_s)
    need(_is_int(cfg.max_tool_output_chars) and cfg.max_tool_output_chars >= 100,
         "max_tool_output_chars must be an integer >= 100", cfg.max_tool_output_chars)
    need(_is_int(cfg.max_parallel_tool_calls) and cfg.max_parallel_tool_calls >= 1,
         "max_parallel_tool_calls must be an integer >= 1", cfg.max_parallel_tool_calls)
    need(cfg.stream is None or isinstance(cfg.stream, bool), "stream must be True, False or None", cfg.stream)
    need(cfg.tool_choice is None or (isinstance(cfg.tool_choice, str) and cfg.tool_choice != "")
         or isinstance(cfg.tool_choice, dict),
         'tool_choice must be "auto", "none", "required", a tool-choice dict or None', cfg.tool_choice)
    if not isinstance(cfg.round_limit_note, str):
        problems.append(f"round_limit_note must be a string, got {cfg.round_limit_note!r}")
    else:
        try:
            cfg.round_limit_note.format(max_rounds=cfg.max_rounds)
        except (IndexError, KeyError, ValueError) as exc:
            problems.append(f"round_limit_note may only use the {{max_rounds}} placeholder ({exc!r})")
    return problems
