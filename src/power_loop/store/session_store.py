"""SessionStore: the store's one public object, a thin facade over the per-table modules.

Invariants: every write is one transaction and bad input is rejected before it; an
append is exactly one ``Database.write`` batch (one commit) that fences on the
session's ``next_seq`` and carries the send's stats and consumed follow-ups, so the
messages and everything describing them change together or not at all; given a
``Lease``, the same batch also checks (and renews) it, so a sender that lost its lease
writes nothing. SQL strings are rendered once per store; the hot paths
(``append_messages``, ``get_session``) only encode the new data and build one parameter
tuple per row. Sessions own rows in every table with a ``session_id`` column.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from power_loop.contracts.errors import InvalidArgumentError, SessionNotFoundError, StoreError
from power_loop.contracts.json import Message
from power_loop.store import leases
from power_loop.store.codec import encode_json, json_problem, now_ms
from power_loop.store.follow_ups import FollowUpQueries, check_follow_up_ids, follow_up_from_row
from power_loop.store.leases import AppendOutcome, Lease, LeaseLostError, LeaseQueries, LeaseRow, lease_from_row
from power_loop.store.maintenance import (
    CHECKPOINT_MODES,
    MaintenanceCapable,
    PruneQueries,
    checkpoint_mode,
    prune_compacted,
)
from power_loop.store.messages import (
    MessageQueries,
    encode_messages,
    message_from_row,
    window_from_json,
    window_from_rows,
)
from power_loop.store.port import Database, Stmt, WriteConflict
from power_loop.store.rows import (
    FollowUpRow,
    MessageRow,
    NewMessage,
    SessionRow,
    SessionStatsRow,
    StatsDelta,
    WindowRows,
)
from power_loop.store.schema import SCHEMA_VERSION, validate_table_prefix
from power_loop.store.sessions import (
    SessionQueries,
    delete_sessions,
    new_session_params,
    row_from_params,
    session_from_row,
)
from power_loop.store.stats import StatsQueries, check_delta, stats_from_row

logger = logging.getLogger(__name__)


class _NotRunning(Exception):
    """No send of another holder runs the session: the conditional enqueue writes nothing."""

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["CHECKPOINT_MODES", "Lease", "LeaseLostError", "MaintenanceCapable", "SessionStore"]


class SessionStore:
    """Durable sessions, their message log, stats and follow-ups, over any ``Database``.

    Build one with ``await open_store(dsn)``; the constructor takes an already
    provisioned database.
    """

    def __init__(self, db: Database, *, table_prefix: str = "pl_", schema_version: int = SCHEMA_VERSION,
                 max_spawn_depth: int = 3, clock: Callable[[], int] | None = None) -> None:
        self.db = db
        """The underlying ``Database`` (its ``counters`` count round trips)."""
        self.table_prefix = validate_table_prefix(table_prefix)
        self.schema_version = schema_version
        self.dialect_name: str = db.dialect.name
        self.max_spawn_depth = max_spawn_depth
        self._clock = clock or now_ms
        self._sessions = SessionQueries(db.dialect, table_prefix)
        self._messages = MessageQueries(db.dialect, table_prefix)
        self._stats = StatsQueries(db.dialect, table_prefix)
        self._follow_ups = FollowUpQueries(db.dialect, table_prefix)
        self._leases = LeaseQueries(db.dialect, table_prefix)
        from power_loop.store import archive  # export/import only: loaded on first use
        self._archive = archive.ArchiveQueries(db.dialect, table_prefix)
        self._prune = PruneQueries(db.dialect, table_prefix)
        self._fence_sql = self._sessions.fence

    @property
    def max_spawn_depth(self) -> int:
        """Deepest ``spawn_depth`` ``create_session`` accepts."""
        return self._max_spawn_depth

    @max_spawn_depth.setter
    def max_spawn_depth(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgumentError(f"max_spawn_depth must be an int >= 0, got {value!r}")
        self._max_spawn_depth = value

    # -- sessions ------------------------------------------------------------------------
    async def create_session(
        self, *, session_id: str | None = None, metadata: dict[str, Any] | None = None,
        system_prompt: str | None = None, model: str | None = None, config: dict[str, Any] | None = None,
        kind: str = "root", parent_session_id: str | None = None, spawn_tool_call_id: str | None = None,
        spawn_depth: int = 0, lifecycle: str | None = None,
    ) -> SessionRow:
        """Create a session (one write).

        Args:
            session_id: Default a new uuid4 hex; at most 191 characters.
            metadata: A JSON object the host owns.
            system_prompt: The session's system prompt (overridden per call).
            model: The session's model name.
            config: A JSON object of per-session loop settings.
            kind: ``"root"`` or ``"subagent"``.
            parent_session_id: The spawning session (must exist).
            spawn_tool_call_id: The tool call that spawned this session.
            spawn_depth: Nesting depth, at most ``max_spawn_depth``.
            lifecycle: ``"ephemeral"``, ``"linked"``, ``"detached"`` or ``None``.

        Returns:
            The stored row.

        Raises:
            InvalidArgumentError: ``invalid_argument`` — the id exists, or bad fields
                (every problem named; nothing written).
            SessionNotFoundError: ``session.not_found`` — the parent does not exist.
        """
        if session_id is None:
            import uuid  # here, not at module level: it pulls in platform (~2 ms of import)

            session_id = uuid.uuid4().hex
        sid = session_id
        params = new_session_params(
            session_id=sid, now=self._clock(), metadata=metadata, system_prompt=system_prompt, model=model,
            config=config, kind=kind, parent_session_id=parent_session_id,
            spawn_tool_call_id=spawn_tool_call_id, spawn_depth=spawn_depth, lifecycle=lifecycle,
            max_spawn_depth=self._max_spawn_depth,
        )
        if parent_session_id is not None and await self.get_session(parent_session_id) is None:
            raise SessionNotFoundError(parent_session_id)
        try:
            await self.db.write((Stmt(self._sessions.create, params, expect_rows=1),))
        except WriteConflict as exc:
            raise InvalidArgumentError(
                f"session {sid!r} already exists: pass another session_id, or none to get a fresh one"
            ) from exc
        return row_from_params(params)

    async def get_session(self, session_id: str) -> SessionRow | None:
        """The session row (one read), or ``None``."""
        row = await self.db.fetchone(self._sessions.get, (session_id,))
        return None if row is None else session_from_row(row)

    async def list_children(self, parent_session_id: str) -> list[SessionRow]:
        """Sessions whose parent is ``parent_session_id``, oldest first."""
        rows = await self.db.fetchall(self._sessions.children, (parent_session_id,))
        return [session_from_row(r) for r in rows]

    async def close_session(self, session_id: str, *, cascade: bool = True) -> int:
        """Delete a session and all it owns; with ``cascade`` its descendants too (one transaction).

        Without ``cascade`` its children survive, keeping ``parent_session_id``.

        Returns:
            The number of sessions deleted (0 for an unknown id).
        """
        return await delete_sessions(self.db, self._sessions, session_id, cascade=cascade)

    delete_session = close_session
    """Alias of ``close_session``: deletes the session and everything it owns (leases included)."""

    # -- messages ------------------------------------------------------------------------
    async def append_messages(
        self, session_id: str, messages: Sequence[NewMessage], *, expected_next_seq: int,
        start_send: bool = False, stats: StatsDelta | None = None, consume_follow_ups: Sequence[int] = (),
        lease: Lease | None = None,
    ) -> list[MessageRow]:
        """Append ``messages`` with seqs ``expected_next_seq …`` in exactly one commit.

        The same transaction advances ``next_seq`` (fenced on ``expected_next_seq``),
        counts a started send, adds ``stats`` and deletes the consumed follow-ups; with
        ``lease`` it first checks that the lease is still held (and renews it).

        Returns:
            The rows as stored.

        Raises:
            InvalidArgumentError: ``invalid_argument`` — a bad message, delta or id list.
            SessionNotFoundError: ``session.not_found`` — no such session.
            WriteConflict: ``store.write_conflict`` — ``expected_next_seq`` is stale
                (another writer appended) or a follow-up was already consumed; nothing
                was written.
            LeaseLostError: ``session.lease_lost`` — ``lease`` is no longer held; nothing
                was written.
        """
        outcome = await self.append_batch(session_id, messages, expected_next_seq=expected_next_seq,
                                          start_send=start_send, stats=stats,
                                          consume_follow_ups=consume_follow_ups, lease=lease)
        return outcome.rows

    async def append_batch(
        self, session_id: str, messages: Sequence[NewMessage], *, expected_next_seq: int,
        start_send: bool = False, stats: StatsDelta | None = None, consume_follow_ups: Sequence[int] = (),
        lease: Lease | None = None, release_lease: bool | Literal["unless_queued"] = False,
        probe_follow_ups: bool = False, renew_lease: bool = True,
    ) -> AppendOutcome:
        """``append_messages`` for a running send: the same single commit, plus two riders.

        ``release_lease`` lets ``lease`` go in that same commit (the send's last write);
        ``"unless_queued"`` keeps it if inputs are queued for the session at that moment
        (``follow_ups_waiting``: the send goes on to run them, so a follow-up enqueued
        while it ran is never stranded). ``probe_follow_ups`` reports whether inputs are
        queued for the session, from any process, at no extra round trip.
        ``renew_lease=False`` says the caller renews the lease otherwise (a keeper timer):
        where the backend serialises writes, the batch then only checks that the lease is
        held, inside its ``next_seq`` fence, and leaves the lease row unwritten (one
        statement and one page less per commit).
        """
        if type(expected_next_seq) is not int or expected_next_seq < 1:
            raise InvalidArgumentError(f"expected_next_seq must be an int >= 1, got {expected_next_seq!r}")
        now = self._clock()
        n = len(messages)
        params, rows = encode_messages(session_id, messages, expected_next_seq, now)
        start = 1 if start_send else 0
        if lease is None:
            stmts = [Stmt(self._fence_sql, (n, start, now, session_id, expected_next_seq), 1)]
        elif not renew_lease and self.db.dialect.serialized_writes:
            self._lease_fence(lease, session_id, now)  # validates the lease
            stmts = [Stmt(self._leases.append_fence_held, (n, start, now, session_id, expected_next_seq,
                                                           session_id, lease.holder, lease.epoch), 1)]
        else:
            stmts = [self._lease_fence(lease, session_id, now),
                     Stmt(self._fence_sql, (n, start, now, session_id, expected_next_seq), 1)]
        if n:
            stmts += self._messages.insert_stmts(params, n)
        if stats is not None:
            check_delta(stats)
            stmts.append(self._stats.bump(session_id, stats, now))
        if consume_follow_ups:
            check_follow_up_ids(consume_follow_ups)
            stmts.append(self._follow_ups.consume(session_id, consume_follow_ups))
        conditional = release_lease == "unless_queued"
        releasing = bool(release_lease) and lease is not None
        if releasing:
            assert lease is not None
            if conditional:
                stmts.append(Stmt(self._leases.release_unless_queued,
                                  (session_id, lease.holder, lease.epoch, session_id)))
            else:
                stmts.append(Stmt(self._leases.release, (session_id, lease.holder, lease.epoch)))
            at_release = len(stmts) - 1
        if probe_follow_ups:
            stmts.append(Stmt(self._follow_ups.probe, (session_id, session_id)))
        try:
            counts = await self.db.write(stmts)
        except WriteConflict as exc:
            await self._explain_conflict(exc, session_id, expected_next_seq, consume_follow_ups, lease)
        released = releasing and (not conditional or counts[at_release] > 0)
        waiting = (probe_follow_ups and counts[-1] > 0) or (releasing and conditional and not released)
        return AppendOutcome(rows=rows, follow_ups_waiting=waiting, lease_released=released)

    def _lease_fence(self, lease: Lease, session_id: str, now: int) -> Stmt:
        if not isinstance(lease, Lease) or lease.session_id != session_id:
            raise InvalidArgumentError(f"lease must be a Lease of session {session_id!r}, got {lease!r}")
        return self._leases.lease_fence(lease, now)

    async def _explain_conflict(self, exc: WriteConflict, session_id: str, expected_next_seq: int,
                                consume_follow_ups: Sequence[int], lease: Lease | None) -> NoReturn:
        if lease is not None and exc.sql == self._leases.fence:
            if await self.get_session(session_id) is None:
                raise SessionNotFoundError(session_id) from exc
            raise LeaseLostError(session_id, holder=lease.holder, epoch=lease.epoch) from exc
        if lease is not None and exc.sql == self._leases.append_fence_held:
            held = await self.get_lease(session_id)  # None also for an unknown session (below)
            if (held is None and await self.get_session(session_id) is not None) or (
                    held is not None and (held.holder != lease.holder or held.epoch != lease.epoch)):
                raise LeaseLostError(session_id, holder=lease.holder, epoch=lease.epoch) from exc
        elif exc.sql != self._fence_sql:
            raise WriteConflict(
                f"follow-ups {list(consume_follow_ups)} of session {session_id!r} are not all queued"
                " (consumed by another writer?); nothing was written",
                sql=exc.sql, expected=exc.expected, actual=exc.actual,
            ) from exc
        session = await self.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(session_id) from exc
        raise WriteConflict(
            f"session {session_id!r} has next_seq {session.next_seq}, not the expected {expected_next_seq}:"
            " another writer appended; reload the session and retry. Nothing was written",
            sql=exc.sql, expected=exc.expected, actual=exc.actual,
        ) from exc

    async def load_active_messages(self, session_id: str) -> list[MessageRow]:
        """The session's ``active`` messages by seq (one read); ``[]`` for an unknown id."""
        rows = await self.db.fetchall(self._messages.load_active, (session_id,))
        return [message_from_row(r) for r in rows]

    async def load_active_window(self, session_id: str) -> tuple[list[Message], list[int], list[int | None]]:
        """The active history as (OpenAI-shaped messages, seqs, round indexes), one read:
        what a loop's window cache is built from (no ``MessageRow`` per message)."""
        loaded = await self.load_window(session_id)
        return loaded.messages, loaded.seqs, loaded.round_indexes

    async def load_window(self, session_id: str) -> WindowRows:
        """The active history as a loop's window is built from it, in one read; empty for
        an unknown id.

        Where the database can build it (SQLite, PostgreSQL), the read returns the whole
        history as wire JSON in one value: one parse gives the messages, and
        ``WindowRows.encoded`` spares the transport encoding them again. Elsewhere, or if
        that value cannot be read or trusted, rows are read one by one (which raises what
        is wrong, if anything is).
        """
        sql = self._messages.load_window_json
        if sql is not None:
            try:
                loaded = window_from_json(await self.db.fetchone(sql, (session_id,)))
            except StoreError as exc:  # a history past the engine's longest value (SQLite: 1e9 bytes), ...
                logger.debug("window of %s as one value failed (%s); reading it row by row", session_id, exc)
                loaded = None
            if loaded is not None:
                return loaded
        rows = await self.db.fetchall(self._messages.load_window, (session_id,))
        messages, seqs, rounds = window_from_rows(rows)
        return WindowRows(messages=messages, seqs=seqs, round_indexes=rounds)

    async def load_all_messages(self, session_id: str) -> list[MessageRow]:
        """Every message of the session, folded-out ones included, by seq (one read)."""
        rows = await self.db.fetchall(self._messages.load_all, (session_id,))
        return [message_from_row(r) for r in rows]

    # -- stats ---------------------------------------------------------------------------
    async def bump_stats(self, session_id: str, stats: StatsDelta, *, lease: Lease | None = None,
                         release_lease: bool = False) -> None:
        """Record a finished send that appended nothing (one write; fenced on ``lease`` if given).

        Raises:
            InvalidArgumentError: ``invalid_argument`` — a negative or non-int counter.
            SessionNotFoundError: ``session.not_found`` — no such session.
            LeaseLostError: ``session.lease_lost`` — ``lease`` is no longer held; nothing written.
        """
        check_delta(stats)
        now = self._clock()
        stmts = [Stmt(self._sessions.touch, (now, session_id), expect_rows=1),
                 self._stats.bump(session_id, stats, now)]
        if lease is not None:
            stmts.insert(0, self._lease_fence(lease, session_id, now))
            if release_lease:
                stmts.append(Stmt(self._leases.release, (session_id, lease.holder, lease.epoch)))
        try:
            await self.db.write(stmts)
        except WriteConflict as exc:
            if lease is not None and exc.sql == self._leases.fence:
                raise LeaseLostError(session_id, holder=lease.holder, epoch=lease.epoch) from exc
            raise SessionNotFoundError(session_id) from exc

    async def get_session_stats(self, session_id: str) -> SessionStatsRow | None:
        """The session's stats, or ``None`` before its first finished send."""
        row = await self.db.fetchone(self._stats.get, (session_id,))
        return None if row is None else stats_from_row(row)

    async def list_session_stats(self) -> list[SessionStatsRow]:
        """Every session's stats, most recent ``last_send_at`` first."""
        return [stats_from_row(r) for r in await self.db.fetchall(self._stats.list_all)]

    # -- follow-ups ----------------------------------------------------------------------
    async def enqueue_follow_up(self, session_id: str, content: Any) -> int:
        """Queue an input for the session's running send (one transaction).

        Returns:
            The queue depth after enqueuing.

        Raises:
            InvalidArgumentError: ``invalid_argument`` — ``content`` is not JSON-serialisable.
            SessionNotFoundError: ``session.not_found`` — no such session.
        """
        depth = await self._enqueue(session_id, content, running_for=None)
        assert depth is not None
        return depth

    async def enqueue_follow_up_if_running(self, session_id: str, content: Any, *, not_holder: str) -> int | None:
        """``enqueue_follow_up`` only while a send of another holder runs the session (its
        lease is live), checked in the same transaction; None, and nothing written, if not.

        The check comes after the transaction has written the session row, which a
        send's appends write first too, and a send's last append lets its lease go only
        if nothing is queued (``release_lease="unless_queued"``): so either the running
        send sees this input and runs it, or this call sees the lease gone and the caller
        sends the input itself. An input is never left queued behind a finished send.

        Raises:
            InvalidArgumentError: ``invalid_argument`` — ``content`` is not JSON-serialisable.
            SessionNotFoundError: ``session.not_found`` — no such session.
        """
        return await self._enqueue(session_id, content, running_for=not_holder)

    async def _enqueue(self, session_id: str, content: Any, *, running_for: str | None) -> int | None:
        problem = json_problem("follow-up content", content)
        if problem:
            raise InvalidArgumentError(problem)
        q = self._follow_ups
        try:
            async with self.db.transaction() as tx:
                if await tx.execute(q.allocate, (session_id,)) != 1:
                    raise SessionNotFoundError(session_id)
                if running_for is not None:
                    held = lease_from_row(session_id, await tx.fetchone(self._leases.read, (session_id,)))
                    if held is None or held.holder == running_for or not held.is_live(self._clock()):
                        raise _NotRunning  # rolls the transaction back: nothing written
                await tx.execute(q.insert, (session_id, session_id, encode_json(content), self._clock()))
                row = await tx.fetchone(q.count, (session_id,))
        except _NotRunning:
            return None
        return 0 if row is None else int(row[0])

    async def list_follow_ups(self, session_id: str) -> list[FollowUpRow]:
        """The session's queued follow-ups, oldest first."""
        rows = await self.db.fetchall(self._follow_ups.list_all, (session_id,))
        return [follow_up_from_row(r) for r in rows]

    # -- leases --------------------------------------------------------------------------
    async def acquire_lease(self, session_id: str, *, holder: str, ttl_ms: int, wait_s: float,
                            clock: Callable[[], int] | None = None) -> Lease:
        """Take the session's cross-process lease, waiting up to ``wait_s`` for another holder.

        Free: never taken, released, expired (``expires_at <= now``), or held by a dead
        process on this host; taking it bumps the epoch. The holder of a live lease
        re-enters (same epoch, expiry extended). A live holder is polled with backoff
        (20 ms doubling to 250 ms) until ``wait_s``. Returns the held ``Lease``: pass it to
        ``append_messages``/``bump_stats``, then ``release_lease`` it.

        Args:
            session_id: The session to lease.
            holder: Who holds it, unique per owner: ``default_lease_holder()``.
            ttl_ms: How long the lease lasts without a renewal or a fenced write.
            wait_s: How long to wait for a live holder before giving up (0: do not wait).
            clock: Epoch milliseconds for expiry decisions; default the store's clock.

        Raises:
            InvalidArgumentError: ``invalid_argument`` — bad holder, ttl_ms or wait_s.
            SessionNotFoundError: ``session.not_found`` — no such session.
            SessionBusyError: ``session.busy`` — another live holder kept it past ``wait_s``.
        """
        leases.check_lease_args(holder, ttl_ms, wait_s)
        return await leases.acquire(self.db, self._leases, session_id, holder=holder, ttl_ms=ttl_ms,
                                    wait_s=float(wait_s), clock=clock or self._clock)

    async def renew_lease(self, lease: Lease, *, clock: Callable[[], int] | None = None) -> Lease:
        """Extend ``lease`` to ``now + lease.ttl_ms`` (one write).

        Raises:
            LeaseLostError: ``session.lease_lost`` — it was taken over or released.
        """
        return await leases.renew(self.db, self._leases, lease, (clock or self._clock)())

    async def get_lease(self, session_id: str) -> LeaseRow | None:
        """The session's lease row (one read), or None when it was never leased or is unknown."""
        return lease_from_row(session_id, await self.db.fetchone(self._leases.read, (session_id,)))

    async def release_lease(self, lease: Lease) -> None:
        """Let ``lease`` go so the next sender takes it at once; idempotent (one write)."""
        await leases.release(self.db, self._leases, lease)

    # -- archives ------------------------------------------------------------------------
    async def export_session(self, session_id: str) -> dict[str, Any]:
        """The session's whole durable state as a JSON-serialisable archive (one transaction).

        Returns ``{"format", "schema_version", "session_id", "exported_at", "tables":
        {<logical table>: [{column: value}]}}``: the session row, every message in every
        state, stats, queued follow-ups and any other per-session table (not leases).

        Raises:
            SessionNotFoundError: ``session.not_found`` — no such session.
        """
        from power_loop.store import archive  # export/import only: loaded on first use
        return await archive.export_session(self.db, self._archive, session_id, self._clock())

    async def import_session(self, data: dict[str, Any], *, new_session_id: str | None = None,
                             replace: bool = False) -> str:
        """Restore an archive as an independent root session that continues normally (one transaction).

        Args:
            data: An ``export_session`` archive, from any backend, prefix or older schema.
            new_session_id: Import under this id instead of the archive's.
            replace: Replace an existing session with that id (atomically) instead of refusing.

        Returns:
            The imported session's id (``new_session_id`` or the archive's).

        Raises:
            InvalidArgumentError: ``invalid_argument`` — a malformed archive (every problem
                named), one from a newer schema, or an existing id without ``replace``;
                the database is unchanged.
        """
        from power_loop.store import archive  # export/import only: loaded on first use
        return await archive.import_session(self.db, self._archive, data, new_session_id=new_session_id,
                                            replace=replace)

    # -- maintenance and lifecycle -------------------------------------------------------
    async def prune_compacted_messages(self, session_id: str, *, older_than_ms: int | None = None,
                                       keep_recent: int = 0) -> int:
        """Irreversibly delete the session's folded-out originals (state ``compacted_out``).

        ``older_than_ms``: only those created at least that long ago; ``keep_recent``: keep
        that many of the newest. Returns the number of messages deleted.

        Raises:
            InvalidArgumentError: ``invalid_argument`` — a negative or non-int argument.
            SessionNotFoundError: ``session.not_found`` — no such session.
        """
        return await prune_compacted(self.db, self._prune, session_id, older_than_ms=older_than_ms,
                                     keep_recent=keep_recent, now=self._clock())

    async def vacuum(self, *, incremental: bool = True) -> None:
        """Reclaim free space (SQLite); a no-op where the backend has nothing to do."""
        if isinstance(self.db, MaintenanceCapable):
            await self.db.vacuum(incremental=incremental)

    async def checkpoint(self, *, mode: str = "TRUNCATE") -> None:
        """Flush the write-ahead log into the database file (SQLite); a no-op elsewhere.

        Raises:
            InvalidArgumentError: ``invalid_argument`` — mode not one of ``CHECKPOINT_MODES``.
        """
        mode = checkpoint_mode(mode)
        if isinstance(self.db, MaintenanceCapable):
            await self.db.checkpoint(mode=mode)

    async def backup(self, dest_path: str | Path) -> None:
        """Write a consistent copy of the database to ``dest_path`` (SQLite); a no-op elsewhere."""
        if isinstance(self.db, MaintenanceCapable):
            await self.db.backup(dest_path)

    async def close(self) -> None:
        """Close the database; idempotent."""
        await self.db.close()

    async def __aenter__(self) -> SessionStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (f"SessionStore(dialect={self.dialect_name!r}, table_prefix={self.table_prefix!r},"
                f" schema_version={self.schema_version})")
