"""RunContext: everything one run (a send, resume or follow-up drain) reads and mutates.

It owns the session window for the run's duration and is the only path by which the
engine appends messages: ``append`` applies MESSAGE_APPEND hooks, writes one fenced
batch (one commit) and extends the window with exactly what was stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from power_loop.contracts.cancellation import CancellationToken
from power_loop.contracts.events import AgentEvent, AgentEventType, BaseEventPayload
from power_loop.contracts.hooks import HookPoint, MessageAppendCtx
from power_loop.contracts.json import JSONObject, Message
from power_loop.engine.config import AgentLoopConfig
from power_loop.engine.result import empty_usage
from power_loop.engine.window import SessionWindow
from power_loop.events.bus import AgentEventBus
from power_loop.hooks.registry import AgentHooks
from power_loop.llm.contract import LLMService, LLMTokenUsage
from power_loop.llm.retry import LLMRetryPolicy
from power_loop.store.rows import MessageRow, NewMessage, StatsDelta
from power_loop.store.session_store import SessionStore
from power_loop.tools.registry import ToolRegistry


@dataclass(slots=True, kw_only=True)
class RunContext:
    store: SessionStore
    llm: LLMService
    retry_policy: LLMRetryPolicy
    config: AgentLoopConfig
    hooks: AgentHooks
    bus: AgentEventBus
    session_id: str
    window: SessionWindow
    token: CancellationToken
    has_stop_event: bool
    registry: ToolRegistry | None
    """The offered tools (None: the loop has no registry; tool calls leave the session pending)."""
    system_prompt: str
    tools_payload: list[JSONObject] | None
    send_index: int | None
    stream: bool
    follow_up_signal: Any = None
    """Set by the loop when this run has durable follow-ups to drain (an asyncio.Event)."""
    usage: dict[str, int] = field(default_factory=empty_usage)
    rounds: int = 0
    tool_calls_executed: int = 0
    final_text: str = ""
    stats_recorded: bool = False

    # -- events -------------------------------------------------------------------------
    def emit(self, etype: AgentEventType, data: BaseEventPayload, *, round_index: int | None = None,
             stream_id: str | None = None) -> None:
        """Publish an event if anyone listens (builds nothing otherwise)."""
        if self.bus.wants(etype):
            self.bus.publish(AgentEvent(etype, data=data, session_id=self.session_id,
                                        round_index=round_index, stream_id=stream_id))

    # -- usage --------------------------------------------------------------------------
    def add_usage(self, usage: LLMTokenUsage) -> dict[str, int]:
        """Fold one call's usage into the run's totals; return this call's counts."""
        prompt = usage.prompt_tokens or 0
        completion = usage.completion_tokens or 0
        call = {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "cache_read_tokens": usage.cache_read, "reasoning_tokens": usage.reasoning,
            "total_tokens": usage.total, "calls": 1,
        }
        for key, value in call.items():
            self.usage[key] += value
        return call

    @property
    def spent_tokens(self) -> int:
        return self.usage["prompt_tokens"] + self.usage["completion_tokens"]

    def stats_delta(self) -> StatsDelta:
        return StatsDelta(
            rounds=self.rounds, llm_calls=self.usage["calls"], tool_calls=self.tool_calls_executed,
            prompt_tokens=self.usage["prompt_tokens"], completion_tokens=self.usage["completion_tokens"],
            total_tokens=self.usage["total_tokens"],
        )

    # -- persistence --------------------------------------------------------------------
    async def append(self, messages: Sequence[Message], *, round_index: int | None, start_send: bool = False,
                     final: bool = False, consume_follow_ups: Sequence[int] = ()) -> list[MessageRow]:
        """Persist ``messages`` in one commit and extend the window with the stored rows.

        ``final=True`` records the run's stats in the same commit.
        """
        if self.hooks.has(HookPoint.MESSAGE_APPEND):
            edited: list[Message] = []
            for message in messages:
                hctx = MessageAppendCtx(message=dict(message), round_index=round_index or 0,
                                        session_id=self.session_id)
                await self.hooks.run(HookPoint.MESSAGE_APPEND, hctx)
                edited.append(hctx.message)
            messages = edited
        new = [NewMessage.from_message(m, round_index=round_index, send_index=self.send_index) for m in messages]
        stats = self.stats_delta() if final else None
        rows = await self.store.append_messages(
            self.session_id, new, expected_next_seq=self.window.next_seq, start_send=start_send,
            stats=stats, consume_follow_ups=consume_follow_ups,
        )
        if start_send:
            self.window.send_count += 1
        if final:
            self.stats_recorded = True
        self.window.extend(rows)
        return rows
