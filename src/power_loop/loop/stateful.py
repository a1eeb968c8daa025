"""StatefulAgentLoop: the public handle over an LLM, a store, tools, hooks and events.

The loop holds no authoritative state: sessions live in the store, and the per-session
window cache is validated by ``next_seq`` on every send. One send at a time per session
in this process (an asyncio lock per session; sends queue); sessions run concurrently.
Validation (unknown session, pending tool calls, unknown tool names, bad input) happens
before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from power_loop.contracts.cancellation import CancellationLike, CancellationToken
from power_loop.contracts.errors import (
    InvalidArgumentError,
    LoopClosedError,
    SessionNotFoundError,
    SessionPendingError,
    StoreConfigError,
    ToolNotFound,
    UsageError,
)
from power_loop.contracts.events import AgentEventType
from power_loop.contracts.json import JSONObject, Message
from power_loop.engine.config import DEFAULT_AGENT_SYSTEM_PROMPT, AgentLoopConfig
from power_loop.engine.context import RunContext
from power_loop.engine.result import FollowUpQueued, StatefulResult
from power_loop.engine.run import StaleWindowError, execute_run
from power_loop.engine.tool_calls import answer_calls
from power_loop.engine.window import SessionWindow, own_copy
from power_loop.events.bus import AgentEventBus
from power_loop.hooks.registry import AgentHooks
from power_loop.llm.contract import LLMService
from power_loop.llm.retry import LLMRetryPolicy
from power_loop.llm.structured import StructuredOutputSpec
from power_loop.loop.cache import CacheStats, WindowCache
from power_loop.loop.lease_keeper import LeaseKeeper
from power_loop.loop.sync_runner import SyncRunner
from power_loop.loop.user_input import normalize_user_input
from power_loop.store.dsn import DEFAULT_DB_PATH, open_store
from power_loop.store.leases import Lease, default_lease_holder
from power_loop.store.rows import SchemaPolicy, SessionRow, SessionStatsRow
from power_loop.store.session_store import SessionStore
from power_loop.tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

_STREAM_EVENTS = (AgentEventType.STREAM_DELTA, AgentEventType.STREAM_THINK_DELTA, AgentEventType.STREAM_STARTED,
                  AgentEventType.STREAM_COMPLETED, AgentEventType.STREAM_TOOL_CALL_DELTA)


class StatefulAgentLoop:
    """Run durable multi-round LLM ⇄ tool sessions.

    Example:
        >>> loop = StatefulAgentLoop(llm=create_llm_service_from_env(), dsn="app.db")  # doctest: +SKIP
        >>> sid = await loop.new_session()  # doctest: +SKIP
        >>> (await loop.send("Hello", session_id=sid)).final_text  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        llm: LLMService,
        store: SessionStore | None = None,
        dsn: str | None = None,
        db_path: str | None = None,
        table_prefix: str | None = None,
        schema: SchemaPolicy | str | None = None,
        config: AgentLoopConfig | None = None,
        tool_registry: ToolRegistry | None = None,
        hooks: AgentHooks | None = None,
        event_bus: AgentEventBus | None = None,
        max_spawn_depth: int | None = None,
        session_cache_size: int = 256,
    ) -> None:
        if store is not None and (dsn is not None or db_path is not None or table_prefix is not None
                                  or schema is not None):
            raise StoreConfigError("pass either store= or dsn=/db_path=/table_prefix=/schema=, not both")
        if dsn is not None and db_path is not None:
            raise StoreConfigError("pass dsn= or its alias db_path=, not both")
        if session_cache_size < 0:
            raise InvalidArgumentError(f"session_cache_size must be >= 0, got {session_cache_size}")
        self.llm = llm
        self.config = config or AgentLoopConfig()
        self.tool_registry = tool_registry
        self._hooks = hooks or AgentHooks()
        self._event_bus = event_bus or AgentEventBus()
        self._given_store = store
        self.store: SessionStore | None = store
        self._dsn = dsn if dsn is not None else (db_path if db_path is not None else DEFAULT_DB_PATH)
        self._table_prefix = "pl_" if table_prefix is None else table_prefix
        self._schema = schema
        self._max_spawn_depth = max_spawn_depth
        self._store_lock: asyncio.Lock | None = None
        self._cache = WindowCache(session_cache_size)
        self._session_locks: dict[str, asyncio.Lock] = {}
        self._running: dict[str, asyncio.Event] = {}
        self._leftover_follow_ups: set[str] = set()
        self._holder = default_lease_holder()
        self._leases: OrderedDict[str, Lease] = OrderedDict()
        self._inflight = 0
        self._idle: asyncio.Event | None = None
        self._closed = False
        self._sync = SyncRunner()

    # -- properties ---------------------------------------------------------------------
    @property
    def hooks(self) -> AgentHooks:
        return self._hooks

    @property
    def event_bus(self) -> AgentEventBus:
        return self._event_bus

    @property
    def cache_stats(self) -> CacheStats:
        return self._cache.stats()

    # -- store --------------------------------------------------------------------------
    async def ensure_store(self) -> SessionStore:
        """Open the owned store once (connection and schema errors surface here)."""
        if self.store is not None:
            return self.store
        if self._store_lock is None:
            self._store_lock = asyncio.Lock()
        async with self._store_lock:
            if self.store is None:
                kwargs: dict[str, Any] = {"table_prefix": self._table_prefix, "schema": self._schema}
                if self._max_spawn_depth is not None:
                    kwargs["max_spawn_depth"] = self._max_spawn_depth
                self.store = await open_store(self._dsn, **kwargs)
        return self.store

    def _check_open(self) -> None:
        if self._closed:
            raise LoopClosedError("this StatefulAgentLoop is closed; build a new one")

    # -- sessions -----------------------------------------------------------------------
    async def new_session(self, *, metadata: JSONObject | None = None, system_prompt: str | None = None) -> str:
        """Create an empty root session and return its id."""
        self._check_open()
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise InvalidArgumentError(f"system_prompt must be a string, got {type(system_prompt).__name__}")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidArgumentError(f"metadata must be a dict, got {type(metadata).__name__}")
        store = await self.ensure_store()
        row = await store.create_session(metadata=metadata, system_prompt=system_prompt)
        self._cache.put(row.session_id, SessionWindow(next_seq=row.next_seq, send_count=row.send_count,
                                                      system_prompt=row.system_prompt))
        return row.session_id

    async def _session(self, session_id: str) -> SessionRow:
        if not isinstance(session_id, str) or not session_id:
            raise InvalidArgumentError(f"session_id must be a non-empty string, got {session_id!r}")
        store = await self.ensure_store()
        row = await store.get_session(session_id)
        if row is None:
            raise SessionNotFoundError(session_id)
        return row

    async def _window(self, row: SessionRow) -> SessionWindow:
        window = self._cache.get(row.session_id, row.next_seq)
        if window is not None:
            return window
        assert self.store is not None
        loaded = await self.store.load_window(row.session_id)
        window = SessionWindow.from_loaded(loaded, next_seq=row.next_seq, send_count=row.send_count,
                                           system_prompt=row.system_prompt)
        self._cache.put(row.session_id, window)
        return window

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._session_locks.get(session_id)
        if lock is None:
            lock = self._session_locks[session_id] = asyncio.Lock()
        return lock

    # -- prompt and tools ---------------------------------------------------------------
    def _offered(self, tools: Sequence[str] | ToolRegistry | None) -> ToolRegistry | None:
        if isinstance(tools, ToolRegistry):
            return tools
        if tools is None:
            return self.tool_registry
        if isinstance(tools, str):
            raise InvalidArgumentError("tools= must be a list of tool names or a ToolRegistry, not a string")
        names = list(tools)
        base = self.tool_registry or ToolRegistry()
        return base.subset(names)  # unknown names → ToolNotFound, before any write

    def _system_prompt(self, per_call: str | None, session_prompt: str | None, offered: ToolRegistry | None) -> str:
        prompt = per_call or session_prompt or self.config.system_prompt or DEFAULT_AGENT_SYSTEM_PROMPT
        if self.config.inject_tool_descriptions and offered is not None and len(offered.names()) > 0:
            lines = [self.config.tool_catalog_header]
            for d in offered.definitions():
                summary = (d.description or "").strip().splitlines()
                lines.append(f"- {d.name}: {summary[0] if summary else ''}".rstrip())
            prompt = prompt + "\n\n" + "\n".join(lines)
        return prompt

    async def resolve_system_prompt(self, *, session_id: str | None = None) -> str:
        """The exact system prompt the next send would use."""
        row = await self._session(session_id) if session_id is not None else None
        return self._system_prompt(None, row.system_prompt if row is not None else None, self.tool_registry)

    def _retry_policy(self) -> tuple[LLMService, LLMRetryPolicy]:
        llm = self.llm
        inner = getattr(llm, "inner", None)
        wrapped_policy = getattr(llm, "retry_policy", None)
        if inner is not None and isinstance(wrapped_policy, LLMRetryPolicy):
            llm = inner  # a with_retry() service: unwrap so retries never stack
        if self.config.retry_policy is not None:
            return llm, self.config.retry_policy
        if isinstance(wrapped_policy, LLMRetryPolicy):
            return llm, wrapped_policy
        own = getattr(llm, "retry_policy", None)
        if isinstance(own, LLMRetryPolicy):
            return llm, own
        return llm, LLMRetryPolicy(total_timeout=None)

    def _streaming(self) -> bool:
        if self.config.stream is not None:
            return self.config.stream
        return any(self._event_bus.wants(t) for t in _STREAM_EVENTS)

    # -- running ------------------------------------------------------------------------
    async def send(
        self,
        user_input: str | JSONObject,
        session_id: str,
        *,
        stop_event: CancellationLike = None,
        tools: Sequence[str] | ToolRegistry | None = None,
        system_prompt: str | None = None,
        heal_pending: bool = False,
        output_schema: StructuredOutputSpec | JSONObject | None = None,
        tool_choice: str | JSONObject | None = None,
    ) -> StatefulResult:
        """Append ``user_input`` to the session and run rounds until the model answers.

        ``output_schema`` and ``tool_choice`` override the config's for this send only
        (an ``output_schema`` replaces the config's ``response_format`` too).

        Raises:
            SessionNotFoundError: ``session.not_found``.
            SessionPendingError: ``session.pending`` — unresolved tool calls (unless ``heal_pending``).
            ToolNotFound: ``tool.not_found`` — ``tools=`` or ``tool_choice=`` names a tool not offered.
            InvalidArgumentError: ``invalid_argument`` — empty or non-text input, a bad ``output_schema``.
            LoopClosedError: ``loop.closed``.
        """
        self._check_open()
        message = normalize_user_input(user_input)
        offered = self._offered(tools)
        config = self._send_config(output_schema, tool_choice, offered)
        return await self._run(session_id, message=message, stop_event=stop_event, offered=offered,
                               system_prompt=system_prompt, heal_pending=heal_pending, resume=False,
                               config=config)

    def _send_config(
        self, output_schema: StructuredOutputSpec | JSONObject | None, tool_choice: str | JSONObject | None,
        offered: ToolRegistry | None,
    ) -> AgentLoopConfig | None:
        """The config of one send with its overrides (None: ``self.config`` as is)."""
        changes: dict[str, Any] = {}
        if output_schema is not None:
            changes["output_schema"] = StructuredOutputSpec.coerce(output_schema)
            changes["response_format"] = None
        if tool_choice is not None:
            named = tool_choice if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required") \
                else _named_tool(tool_choice)
            if named is not None and (offered is None or named not in offered.names()):
                raise ToolNotFound(named, known=offered.names() if offered is not None else ())
            changes["tool_choice"] = tool_choice
        return self.config.with_changes(**changes) if changes else None

    async def resume(self, session_id: str, *, stop_event: CancellationLike = None) -> StatefulResult:
        """Run the pending round's unresolved tool calls, then continue without new input."""
        self._check_open()
        return await self._run(session_id, message=None, stop_event=stop_event, offered=self.tool_registry,
                               system_prompt=None, heal_pending=False, resume=True)

    async def _run(self, session_id: str, *, message: Message | None, stop_event: CancellationLike,
                   offered: ToolRegistry | None, system_prompt: str | None, heal_pending: bool,
                   resume: bool, config: AgentLoopConfig | None = None) -> StatefulResult:
        # Checked before the session is locked or leased: a bad argument changes nothing.
        token = CancellationToken.from_any(stop_event)
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise InvalidArgumentError(f"system_prompt must be a string or None, got {type(system_prompt).__name__}")
        self._enter()
        try:
            async with self._lock(session_id):
                # Optimistic on the warm path: the lease this loop last held and the cached
                # window are used without a read. The run's first write is fenced on both
                # (the lease's holder and epoch, the window's next_seq), so if another
                # process took the lease or appended, nothing is written and the run starts
                # again — after waiting for the lease when someone else holds it.
                store = await self.ensure_store()
                lease = self._leases.get(session_id) if message is not None else None
                for attempt in range(4):
                    fresh = attempt > 0 or message is None
                    if lease is None:
                        lease = await store.acquire_lease(
                            session_id, holder=self._holder, ttl_ms=int(self.config.lease_ttl_s * 1000),
                            wait_s=self.config.lease_wait_s)
                        fresh = True
                    window = await self._prepared_window(session_id, fresh=fresh)
                    try:
                        return await self._run_on(window, session_id, lease, message=message, token=token,
                                                  has_stop_event=stop_event is not None, offered=offered,
                                                  system_prompt=system_prompt, heal_pending=heal_pending,
                                                  resume=resume, config=config)
                    except StaleWindowError as exc:
                        self._cache.drop(session_id)
                        if exc.lease_lost:
                            self._leases.pop(session_id, None)
                            lease = None
                raise UsageError(f"session {session_id!r} kept changing under this send (another writer?)")
        finally:
            self._leave()

    async def _prepared_window(self, session_id: str, *, fresh: bool) -> SessionWindow:
        if not fresh and isinstance(session_id, str):
            window = self._cache.peek(session_id)
            if window is not None:
                return window
        row = await self._session(session_id)
        return await self._window(row)

    async def _run_on(self, window: SessionWindow, session_id: str, lease: Lease, *, message: Message | None,
                      token: CancellationToken, has_stop_event: bool, offered: ToolRegistry | None,
                      system_prompt: str | None,
                      heal_pending: bool, resume: bool,
                      config: AgentLoopConfig | None = None) -> StatefulResult:
        pending = window.pending()
        heal_calls: list[JSONObject] = []
        resume_calls: list[JSONObject] = []
        resume_round: int | None = None
        if pending is not None:
            if resume:
                resume_calls, resume_round = pending.tool_calls, pending.round_index
            elif heal_pending:
                heal_calls = pending.tool_calls
            else:
                fresh = await self._prepared_window(session_id, fresh=True)  # confirm before refusing
                if fresh is not window:
                    raise StaleWindowError("pending state seen in a cached window")
                await self._release_quietly(lease)  # nothing was run: other loops need not wait
                self._remember_lease(lease)  # ... and this one re-takes it with its next write
                raise SessionPendingError(session_id, assistant_seq=pending.assistant_seq,
                                          pending_tool_calls=own_copy(pending.tool_calls))
        if resume and resume_calls and offered is None:
            await self._release_quietly(lease)
            self._remember_lease(lease)
            return StatefulResult(session_id=session_id, status="pending_tools",
                                  pending_tool_calls=own_copy(resume_calls))
        signal = asyncio.Event()
        try:
            ctx = self._run_context(window, session_id, lease, token=token, has_stop_event=has_stop_event,
                                    offered=offered, system_prompt=system_prompt, message=message,
                                    signal=signal, config=config)
        except BaseException:
            await self._release_quietly(lease)
            raise
        if session_id in self._leftover_follow_ups:
            self._leftover_follow_ups.discard(session_id)
            signal.set()
        self._running[session_id] = signal

        def close_follow_ups() -> None:
            if self._running.get(session_id) is signal:
                del self._running[session_id]
                if signal.is_set():  # queued but not drained (the run ended otherwise): the next send drains it
                    self._leftover_follow_ups.add(session_id)

        ctx.close_follow_ups = close_follow_ups
        keeper = LeaseKeeper(ctx, interval_s=self.config.lease_ttl_s / 3)
        keeper.start()
        try:
            result = await execute_run(ctx, opening=[message] if message is not None else [],
                                       start_send=message is not None, heal_calls=heal_calls,
                                       resume_calls=resume_calls, resume_round=resume_round)
        except StaleWindowError:
            raise
        except BaseException:
            self._cache.drop(session_id)  # the window may be ahead of or behind the store
            await keeper.stop()
            if ctx.lease is not None and not ctx.lease_released:
                await self._release_quietly(ctx.lease)
            raise
        finally:
            await keeper.stop()
            close_follow_ups()
        if ctx.lease is not None:
            self._remember_lease(ctx.lease)
        return result

    def _run_context(self, window: SessionWindow, session_id: str, lease: Lease, *, token: CancellationToken,
                     has_stop_event: bool, offered: ToolRegistry | None, system_prompt: str | None,
                     message: Message | None, signal: asyncio.Event,
                     config: AgentLoopConfig | None) -> RunContext:
        llm, policy = self._retry_policy()
        assert self.store is not None  # _run opened it
        return RunContext(
            store=self.store, llm=llm, retry_policy=policy, config=config or self.config,
            hooks=self._hooks, bus=self._event_bus, session_id=session_id, window=window,
            token=token, has_stop_event=has_stop_event,
            registry=offered, system_prompt=self._system_prompt(system_prompt, window.system_prompt, offered),
            tools_payload=offered.to_openai_tools() if offered is not None and offered.names() else None,
            send_index=window.send_count + 1 if message is not None else (window.send_count or None),
            stream=self._streaming(),
            follow_up_signal=signal, lease=lease,
        )

    def _remember_lease(self, lease: Lease) -> None:
        """Keep the last lease per session: the next send re-takes it inside its first write."""
        self._leases[lease.session_id] = lease
        self._leases.move_to_end(lease.session_id)
        while len(self._leases) > max(16, self._cache.capacity):
            self._leases.popitem(last=False)

    async def _release_quietly(self, lease: Lease) -> None:
        assert self.store is not None
        try:
            await self.store.release_lease(lease)
        except Exception:  # a dead connection: the lease expires after lease_ttl_s anyway
            logger.warning("could not release the lease of session %s", lease.session_id, exc_info=True)

    async def follow_up(
        self,
        user_input: str | JSONObject,
        session_id: str,
        *,
        stop_event: CancellationLike = None,
        tools: Sequence[str] | ToolRegistry | None = None,
        system_prompt: str | None = None,
        output_schema: StructuredOutputSpec | JSONObject | None = None,
        tool_choice: str | JSONObject | None = None,
    ) -> StatefulResult | FollowUpQueued:
        """Queue into a running send at its next round boundary, or send now when idle.

        A queued input keeps the running send's policy: ``tools``, ``system_prompt``,
        ``output_schema`` and ``tool_choice`` apply only when it runs as its own send.
        """
        self._check_open()
        message = normalize_user_input(user_input)
        signal = self._running.get(session_id)
        store = await self.ensure_store()
        if signal is None:
            held = await store.get_lease(session_id)
            if held is not None and held.holder != self._holder and held.is_live(int(time.time() * 1000)):
                # running in another process: its next round boundary, or its last append,
                # sees the queued input; if that send let the lease go meanwhile, send it here
                depth = await store.enqueue_follow_up_if_running(session_id, message.get("content"),
                                                                 not_holder=self._holder)
                if depth is not None:
                    return FollowUpQueued(session_id=session_id, queue_depth=depth)
            return await self.send(message, session_id, stop_event=stop_event, tools=tools,
                                   system_prompt=system_prompt, output_schema=output_schema,
                                   tool_choice=tool_choice)
        depth = await store.enqueue_follow_up(session_id, message.get("content"))
        signal.set()
        return FollowUpQueued(session_id=session_id, queue_depth=depth)

    async def abort_pending(self, session_id: str, *, reason: str = "aborted") -> int:
        """Answer every unresolved tool call with ``<aborted: {reason}>``; return how many."""
        self._check_open()
        async with self._lock(session_id):
            store = await self.ensure_store()
            lease = await store.acquire_lease(session_id, holder=self._holder,
                                              ttl_ms=int(self.config.lease_ttl_s * 1000),
                                              wait_s=self.config.lease_wait_s)
            try:
                return await self._abort_pending(session_id, reason, lease)
            finally:
                await self._release_quietly(lease)
                self._remember_lease(lease)

    async def _abort_pending(self, session_id: str, reason: str, lease: Lease) -> int:
        row = await self._session(session_id)
        window = await self._window(row)
        pending = window.pending()
        if pending is None:
            return 0
        llm, policy = self._retry_policy()
        ctx = RunContext(
            store=await self.ensure_store(), llm=llm, retry_policy=policy, config=self.config,
            hooks=self._hooks, bus=self._event_bus, session_id=session_id, window=window,
            token=CancellationToken.never(), has_stop_event=False, registry=None, system_prompt="",
            tools_payload=None, send_index=None, stream=False, lease=lease,
        )
        try:
            await answer_calls(ctx, pending.tool_calls, f"<aborted: {reason}>", round_index=pending.round_index)
        except BaseException:
            self._cache.drop(session_id)
            raise
        return len(pending.tool_calls)

    # -- reads --------------------------------------------------------------------------
    async def get_messages(self, session_id: str, *, include_compacted: bool = False) -> list[Message]:
        """The active history as messages (or the whole audit log)."""
        row = await self._session(session_id)
        assert self.store is not None
        if include_compacted:
            return [r.to_message() for r in await self.store.load_all_messages(session_id)]
        return own_copy((await self._window(row)).messages)  # the caller may edit them; the cache must not change

    async def get_pending(self, session_id: str) -> JSONObject | None:
        """``{"assistant_seq", "round_index", "tool_calls", "pending_interactions"}`` or None."""
        row = await self._session(session_id)
        pending = (await self._window(row)).pending()
        if pending is None:
            return None
        return {"assistant_seq": pending.assistant_seq, "round_index": pending.round_index,
                "tool_calls": own_copy(pending.tool_calls), "pending_interactions": []}

    async def prewarm(self, session_id: str) -> bool:
        """Load the session's active window into the cache; False for an unknown session."""
        try:
            row = await self._session(session_id)
        except SessionNotFoundError:
            return False
        await self._window(row)
        return True

    async def get_session_stats(self, session_id: str) -> SessionStatsRow | None:
        await self._session(session_id)
        assert self.store is not None
        return await self.store.get_session_stats(session_id)

    async def list_session_stats(self) -> list[SessionStatsRow]:
        store = await self.ensure_store()
        return await store.list_session_stats()

    async def close_session(self, session_id: str, *, cascade: bool = True) -> int:
        """Delete the session (and its sub-agent subtree) with everything it owns."""
        self._check_open()
        async with self._lock(session_id):
            await self._session(session_id)
            assert self.store is not None
            deleted = await self.store.close_session(session_id, cascade=cascade)
            self._cache.clear()
            return deleted

    # -- sync API -----------------------------------------------------------------------
    def send_sync(self, user_input: str | JSONObject, session_id: str, **kwargs: Any) -> StatefulResult:
        """Blocking ``send`` on the loop's background event loop."""
        return self._sync.run(self.send(user_input, session_id, **kwargs), what="send")

    def follow_up_sync(self, user_input: str | JSONObject, session_id: str,
                       **kwargs: Any) -> StatefulResult | FollowUpQueued:
        return self._sync.run(self.follow_up(user_input, session_id, **kwargs), what="follow_up")

    def new_session_sync(self, **kwargs: Any) -> str:
        return self._sync.run(self.new_session(**kwargs), what="new_session")

    # -- lifecycle ----------------------------------------------------------------------
    def _enter(self) -> None:
        self._inflight += 1

    def _leave(self) -> None:
        self._inflight -= 1
        if self._inflight == 0 and self._idle is not None:
            self._idle.set()

    async def aclose(self, *, drain_timeout_s: float = 30.0) -> None:
        """Refuse new work, let in-flight sends finish, drain subscribers, close an owned store."""
        if self._closed:
            return
        self._closed = True
        if self._inflight:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), drain_timeout_s)
            except asyncio.TimeoutError:
                logger.warning("aclose: %d send(s) still running after %.1fs", self._inflight, drain_timeout_s)
        await self._event_bus.drain(timeout=drain_timeout_s)
        if self._given_store is None and self.store is not None:
            try:
                await self.store.checkpoint()
            finally:
                await self.store.close()
        self._sync.stop()

    def close(self) -> None:
        """Abrupt, synchronous close: no drain."""
        self._closed = True
        store = self.store if self._given_store is None else None
        if store is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not None:
                logger.warning("close() inside a running event loop only schedules the store close; "
                               "prefer 'await loop.aclose()'")
                running.create_task(store.close())
            elif self._sync.loop is not None:
                asyncio.run_coroutine_threadsafe(store.close(), self._sync.loop).result(10)
            else:
                asyncio.run(store.close())
        self._sync.stop()

    async def __aenter__(self) -> StatefulAgentLoop:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _named_tool(choice: object) -> str | None:
    """The tool a dict ``tool_choice`` forces (``{"type": "function", "function": {"name": …}}``)."""
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]  # type: ignore[no-any-return]
    return None
