"""Per-session leases: one sender per session across processes, with a fencing token.

A lease is a row of ``<prefix>session_leases`` (holder, host, pid, epoch, expiry),
taken and changed only by conditional single-statement writes (``expect_rows=1``), so
it is atomic on every backend without advisory locks that would die with a pooled
connection. Invariants:

* At most one holder at a time: a free (released or expired) lease, or one whose holder
  is a dead process on this host, is taken over by an ``UPDATE`` fenced on the exact
  row that was read (holder, epoch and expiry); of two racing takers exactly one
  matches, and a holder that renewed meanwhile makes the takeover match nothing.
* The epoch is the fencing token: it grows by one every time the lease is taken after
  being free (released or expired) or from a dead holder, and never goes back (release
  keeps the row and only expires it). A re-entrant acquire by the holder of a live
  lease keeps the epoch.
* A write carrying a lease (``lease_fence``) includes, in its own transaction, an
  ``UPDATE`` that matches only while the row still has that holder and epoch — and
  extends the expiry (a renewal for free). A holder that lost its lease writes nothing
  and gets ``LeaseLostError``.
* A lease whose holder died expires after its ``ttl_ms`` (bounded, chosen by the
  holder); on the same host a dead pid is detected at once.

What a lease does not do: it does not stop a process that ignores it (pass the lease
to the writes), and it does not make a holder's in-flight work survive losing it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from power_loop.contracts.errors import (
    InvalidArgumentError,
    PowerLoopError,
    SessionBusyError,
    SessionNotFoundError,
)
from power_loop.store.port import Database, Dialect, Row, Stmt, WriteConflict
from power_loop.store.rows import MessageRow
from power_loop.store.schema import FOLLOW_UPS, SESSION_LEASES, SESSIONS

POLL_MIN_S = 0.02
POLL_MAX_S = 0.25
MAX_HOLDER_LEN = 191


class LeaseLostError(PowerLoopError):
    """The session's lease was taken over (or released) since this holder acquired it; nothing was written."""

    code: ClassVar[str] = "session.lease_lost"

    def __init__(self, session_id: str, *, holder: str, epoch: int) -> None:
        self.session_id = session_id
        self.holder = holder
        self.epoch = epoch
        super().__init__(
            f"session {session_id!r}: lease epoch {epoch} of {holder!r} is no longer held (it expired and"
            " another process took it over, or it was released); nothing was written — acquire it again"
            " and reload the session"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A held session lease: pass it to fenced writes, renew it, release it."""

    session_id: str
    holder: str
    epoch: int
    """The fencing token: grows by one each time another holder takes the lease."""
    expires_at: int
    """Epoch milliseconds after which another holder may take the lease over."""
    ttl_ms: int
    """How far each renewal (and each fenced write) pushes ``expires_at``."""


# eq=False: an internal record nobody compares (no generated __eq__/__hash__ to build at import).
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LeaseRow:
    """A session's lease as stored (whoever holds it)."""

    session_id: str
    holder: str
    host: str | None
    pid: int | None
    epoch: int
    expires_at: int

    def is_live(self, now_ms: int) -> bool:
        """Held right now: not released or expired, and not a dead process of this host."""
        return self.expires_at > now_ms and not holder_is_dead(self.host, self.pid)


def lease_from_row(session_id: str, row: Row | None) -> LeaseRow | None:
    """A ``LeaseQueries.read`` row as a ``LeaseRow``; None when never leased or unknown."""
    if row is None or row[1] is None:
        return None
    return LeaseRow(session_id=session_id, holder=str(row[1]), host=row[2], pid=row[3], epoch=int(row[4]),
                    expires_at=int(row[5]))


# eq=False: an internal record nobody compares (no generated __eq__/__hash__ to build at import).
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AppendOutcome:
    """What ``SessionStore.append_batch`` wrote, and what its riders found."""

    rows: list[MessageRow]
    follow_ups_waiting: bool = False
    """Inputs are queued for this session (asked with ``probe_follow_ups=True``, or found
    by ``release_lease="unless_queued"``, which then kept the lease)."""
    lease_released: bool = False
    """The batch let its lease go (``release_lease``)."""


def default_lease_holder() -> str:
    """A fresh holder id ``"<hostname>:<pid>:<random>"``; use one per owner (e.g. per loop).

    The host and pid let another process on the same host see that the holder died.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(6).hex()}"


def pid_is_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (``os.kill(pid, 0)``)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    except OSError:
        return True  # cannot tell: assume alive, the lease expires anyway
    return True


def holder_is_dead(host: str | None, pid: int | None) -> bool:
    """Whether the holder is a process of this host that no longer exists."""
    if host != socket.gethostname() or pid is None or pid == os.getpid():
        return False
    return not pid_is_alive(pid)


class LeaseQueries:
    """The rendered SQL of the leases table for one dialect and prefix."""

    __slots__ = ("append_fence_held", "fence", "insert", "read", "release", "release_unless_queued", "take_over")

    def __init__(self, dialect: Dialect, table_prefix: str) -> None:
        t = f"{table_prefix}{SESSION_LEASES.name}"
        s = f"{table_prefix}{SESSIONS.name}"
        r = dialect.render
        cols = ("session_id", "holder", "host", "pid", "epoch", "expires_at", "acquired_at")
        self.read = r(
            f"SELECT s.session_id, l.holder, l.host, l.pid, l.epoch, l.expires_at FROM {s} s"
            f" LEFT JOIN {t} l ON l.session_id = s.session_id WHERE s.session_id = ?"
        )
        self.insert = r(dialect.upsert(t, cols, ("session_id",), ()))
        self.take_over = r(
            f"UPDATE {t} SET holder = ?, host = ?, pid = ?, epoch = epoch + 1, expires_at = ?,"
            " acquired_at = ? WHERE session_id = ? AND holder = ? AND epoch = ? AND expires_at = ?"
        )
        self.fence = r(f"UPDATE {t} SET expires_at = ? WHERE session_id = ? AND holder = ? AND epoch = ?")
        self.release = r(f"UPDATE {t} SET expires_at = 0 WHERE session_id = ? AND holder = ? AND epoch = ?")
        f = f"{table_prefix}{FOLLOW_UPS.name}"
        self.release_unless_queued = r(
            f"UPDATE {t} SET expires_at = 0 WHERE session_id = ? AND holder = ? AND epoch = ?"
            f" AND NOT EXISTS (SELECT 1 FROM {f} WHERE session_id = ?)"
        )
        """``release``, unless inputs are queued for the session: 0 rows then, and the
        holder goes on to run them. Inside an append it runs after the session row's
        ``next_seq`` fence, which an enqueue also writes first, so the two serialise: an
        input is either seen here or enqueued after the release (and sees it, see
        ``SessionStore.enqueue_follow_up(while_held=...)``)."""
        self.append_fence_held = r(
            f"UPDATE {s} SET next_seq = next_seq + ?, send_count = send_count + ?, updated_at = ?"
            f" WHERE session_id = ? AND next_seq = ? AND EXISTS (SELECT 1 FROM {t} l"
            " WHERE l.session_id = ? AND l.holder = ? AND l.epoch = ?)"
        )
        """The append fence (``SessionQueries.fence``) that also requires the lease to be held,
        without renewing it: no write to the lease row. Only where writes are serialised
        (``Dialect.serialized_writes``); elsewhere the lease is fenced by writing its row."""

    def lease_fence(self, lease: Lease, now: int) -> Stmt:
        """The statement that refuses a batch unless ``lease`` is still held, and renews it."""
        return Stmt(self.fence, (now + lease.ttl_ms, lease.session_id, lease.holder, lease.epoch), 1)


def check_lease_args(holder: object, ttl_ms: object, wait_s: object) -> None:
    """Raise ``InvalidArgumentError`` (``invalid_argument``) naming every bad argument."""
    problems = []
    if not isinstance(holder, str) or not holder or len(holder) > MAX_HOLDER_LEN:
        problems.append(
            f"holder must be a non-empty string of at most {MAX_HOLDER_LEN} characters, got {holder!r}"
        )
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms < 1:
        problems.append(f"ttl_ms must be an int >= 1, got {ttl_ms!r}")
    if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)) or not wait_s >= 0:
        problems.append(f"wait_s must be a number >= 0, got {wait_s!r}")
    if problems:
        raise InvalidArgumentError("acquire_lease: " + "; ".join(problems))


async def acquire(db: Database, q: LeaseQueries, session_id: str, *, holder: str, ttl_ms: int, wait_s: float,
                  clock: Callable[[], int]) -> Lease:
    """Take the session's lease, waiting up to ``wait_s`` for a live holder to let go.

    Returns:
        The held lease (same epoch when ``holder`` already held it).

    Raises:
        SessionNotFoundError: ``session.not_found`` — no such session.
        SessionBusyError: ``session.busy`` — still held by another live holder after ``wait_s``.
    """
    host, pid = socket.gethostname(), os.getpid()
    started = time.monotonic()
    delay = POLL_MIN_S
    while True:
        row = await db.fetchone(q.read, (session_id,))
        if row is None:
            raise SessionNotFoundError(session_id)
        _, cur_holder, cur_host, cur_pid, cur_epoch, cur_expires = row
        now = clock()
        expires = now + ttl_ms
        if cur_holder is None:
            stmt = Stmt(q.insert, (session_id, holder, host, pid, 1, expires, now), 1)
            epoch = 1
        elif cur_holder == holder and int(cur_expires) > now:
            stmt = Stmt(q.fence, (expires, session_id, holder, cur_epoch), 1)
            epoch = int(cur_epoch)
        elif int(cur_expires) <= now or holder_is_dead(cur_host, cur_pid):
            # Fenced on the exact row read (expiry included): a holder that renewed in the
            # meantime, or a racing taker, makes this match nothing.
            stmt = Stmt(q.take_over, (holder, host, pid, expires, now, session_id, cur_holder, cur_epoch,
                                      cur_expires), 1)
            epoch = int(cur_epoch) + 1
        else:
            waited = time.monotonic() - started
            if waited >= wait_s:
                raise SessionBusyError(session_id, holder=str(cur_holder), waited_s=waited)
            await asyncio.sleep(min(delay, max(0.0, wait_s - waited)))
            delay = min(delay * 2, POLL_MAX_S)
            continue
        try:
            await db.write((stmt,))
        except WriteConflict:
            continue  # another taker changed the row between our read and write: look again
        return Lease(session_id=session_id, holder=holder, epoch=epoch, expires_at=expires, ttl_ms=ttl_ms)


async def renew(db: Database, q: LeaseQueries, lease: Lease, now: int) -> Lease:
    """Push the lease's expiry to ``now + ttl_ms``.

    Raises:
        LeaseLostError: ``session.lease_lost`` — another holder took it, or it was released.
    """
    try:
        await db.write((q.lease_fence(lease, now),))
    except WriteConflict as exc:
        raise LeaseLostError(lease.session_id, holder=lease.holder, epoch=lease.epoch) from exc
    return Lease(session_id=lease.session_id, holder=lease.holder, epoch=lease.epoch,
                 expires_at=now + lease.ttl_ms, ttl_ms=lease.ttl_ms)


async def release(db: Database, q: LeaseQueries, lease: Lease) -> None:
    """Let the lease go (idempotent; a lease already lost is left to its new holder)."""
    await db.write((Stmt(q.release, (lease.session_id, lease.holder, lease.epoch)),))
