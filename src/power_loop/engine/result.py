"""What a send returns: ``StatefulResult`` (and ``FollowUpQueued`` for a queued follow-up)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from power_loop.contracts.json import JSONObject


class RunStatus(str, Enum):
    """Every status a send can end in (API.md §2)."""

    COMPLETED = "completed"
    PENDING_TOOLS = "pending_tools"
    WAITING_FOR_INPUT = "waiting_for_input"
    CANCELLED = "cancelled"
    HIT_ROUND_LIMIT = "hit_round_limit"
    BUDGET_EXCEEDED = "budget_exceeded"
    DEGRADED = "degraded"


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "reasoning_tokens",
              "total_tokens", "calls")


def empty_usage() -> dict[str, int]:
    return dict.fromkeys(USAGE_KEYS, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatefulResult:
    """The outcome of one send, resume or follow-up."""

    session_id: str
    status: str
    final_text: str = ""
    """The run's last assistant text."""
    rounds: int = 0
    """Rounds that called the LLM."""
    pending_tool_calls: list[JSONObject] = field(default_factory=list)
    pending_interactions: list[JSONObject] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=empty_usage)
    """Summed over every LLM call of this send only."""
    tool_calls: int = 0
    """Tools executed (rejected calls are not counted)."""
    structured: JSONObject | None = None
    structured_error: str | None = None
    send_index: int | None = None
    """Which send of the session this was (1, 2, …); None for a resume without new input."""

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.COMPLETED.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id, "status": self.status, "final_text": self.final_text,
            "rounds": self.rounds, "pending_tool_calls": self.pending_tool_calls,
            "pending_interactions": self.pending_interactions, "usage": dict(self.usage),
            "tool_calls": self.tool_calls, "structured": self.structured,
            "structured_error": self.structured_error, "send_index": self.send_index,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowUpQueued:
    """``follow_up`` found the session running: the input waits in its durable queue."""

    session_id: str
    queue_depth: int
    """Undrained inputs, >= 1."""
