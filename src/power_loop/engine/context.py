"""RunContext: everything one run (a send, resume or follow-up drain) reads and mutates.

It owns the session window for the run's duration and is the only path by which the
engine appends messages: ``append`` applies MESSAGE_APPEND hooks, writes one fenced
batch (one commit) and extends the window with exactly what was stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from power_loop.store.leases import Lease
from power_loop.store.rows import MessageRow, NewMessage, StatsDelta
from power_loop.store.session_store import SessionStore
from power_loop.tools.registry import ToolRegistry

_COUNTERS = ("rounds", "llm_calls", "tool_calls", "prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(slots=True, kw_only=True)
class RunContext:
    """Everything one send needs while it runs: store, LLM, bus, hooks, window, counters."""

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
    close_follow_ups: Callable[[], None] | None = None
    """Called once the run has passed its last round boundary: inputs that come later are
    not queued into it (the loop sends them on their own)."""
    usage: dict[str, int] = field(default_factory=empty_usage)
    rounds: int = 0
    tool_calls_executed: int = 0
    final_text: str = ""
    lease: Lease | None = None
    """The session's cross-process lease: every append is fenced on it."""
    lease_released: bool = False
    lease_written: bool = False
    """This run took or renewed the lease with an append since it last let it go: later
    appends only check it is still held (the lease keeper renews it meanwhile)."""
    recorded: StatsDelta | None = None
    """What the run already recorded in the session's stats (with its final message)."""

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
        """The run's totals so far, as one send."""
        return StatsDelta(
            rounds=self.rounds, llm_calls=self.usage["calls"], tool_calls=self.tool_calls_executed,
            prompt_tokens=self.usage["prompt_tokens"], completion_tokens=self.usage["completion_tokens"],
            total_tokens=self.usage["total_tokens"],
        )

    def unrecorded_stats(self) -> StatsDelta | None:
        """What the session's stats still lack: the whole run, or what it did after recording."""
        totals = self.stats_delta()
        done = self.recorded
        if done is None:
            return totals
        extra = StatsDelta(
            sends=0, rounds=totals.rounds - done.rounds, llm_calls=totals.llm_calls - done.llm_calls,
            tool_calls=totals.tool_calls - done.tool_calls, prompt_tokens=totals.prompt_tokens - done.prompt_tokens,
            completion_tokens=totals.completion_tokens - done.completion_tokens,
            total_tokens=totals.total_tokens - done.total_tokens,
        )
        return extra if any(getattr(extra, f) for f in _COUNTERS) else None

    async def settle(self) -> None:
        """Record unrecorded stats and let the lease go (one commit; none if already done)."""
        stats = self.unrecorded_stats()
        lease = self.lease if not self.lease_released else None
        if stats is not None:
            await self.store.bump_stats(self.session_id, stats, lease=lease, release_lease=lease is not None)
            self.recorded = self.stats_delta()
        elif lease is not None:
            await self.store.release_lease(lease)
        self.lease_released = True

    # -- persistence --------------------------------------------------------------------
    async def append(self, messages: Sequence[Message], *, round_index: int | None, start_send: bool = False,
                     final: bool = False, consume_follow_ups: Sequence[int] = (),
                     probe: bool = True) -> list[MessageRow]:
        """Persist ``messages`` in one commit and extend the window with the stored rows.

        Every append is fenced on the run's lease (the first one after taking or releasing it
        also renews it; later ones only check it, see ``lease_written``); a non-final one also asks
        whether follow-ups are queued, unless ``probe=False`` (no round boundary follows it).
        ``final=True`` records the run's stats and releases the lease in the same commit,
        unless inputs are queued for the session then (from any process): the lease stays
        held and ``follow_up_signal`` is set, for the run to go on and drain them. A run
        that goes on after a release re-takes the lease with its next append.
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
        stats = self.unrecorded_stats() if final else None
        probe = probe and not final and self.follow_up_signal is not None
        was_released = self.lease_released
        if final:
            self.lease_released = True  # before the write: the lease keeper must not renew past it
        try:
            outcome = await self.store.append_batch(
                self.session_id, new, expected_next_seq=self.window.next_seq, start_send=start_send,
                stats=stats, consume_follow_ups=consume_follow_ups, lease=self.lease,
                release_lease="unless_queued" if final else False, probe_follow_ups=probe,
                renew_lease=not self.lease_written,
            )
        except BaseException:
            if final:
                self.lease_released = was_released
            raise
        if start_send:
            self.window.send_count += 1
        if final:
            self.recorded = self.stats_delta()
        self.lease_released = outcome.lease_released
        self.lease_written = self.lease is not None and not outcome.lease_released
        if outcome.follow_ups_waiting and self.follow_up_signal is not None:
            self.follow_up_signal.set()
        self.window.extend(outcome.rows)
        return outcome.rows
