"""Session leases: one holder at a time, re-entry, expiry and dead-holder takeover, fencing."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

import pytest

from power_loop.contracts.errors import InvalidArgumentError, SessionBusyError, SessionNotFoundError
from power_loop.store.leases import Lease, LeaseLostError, default_lease_holder, pid_is_alive
from power_loop.store.port import Stmt, WriteConflict
from power_loop.store.rows import NewMessage, StatsDelta
from power_loop.store.session_store import SessionStore

TTL = 10_000


class Clock:
    """An injectable epoch-millisecond clock the test moves by hand."""

    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def clocked(store: SessionStore, clock: Clock) -> SessionStore:
    """The same database seen through a store whose every timestamp comes from ``clock``."""
    return SessionStore(store.db, table_prefix=store.table_prefix, schema_version=store.schema_version,
                        clock=clock)


def user(text: str) -> NewMessage:
    return NewMessage(role="user", content=text)


async def test_acquire_release_and_acquire_again(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    clock = Clock()
    lease = await store.acquire_lease(sid, holder="a", ttl_ms=TTL, wait_s=0, clock=clock)
    assert (lease.session_id, lease.holder, lease.epoch, lease.expires_at) == (sid, "a", 1, clock.now + TTL)
    with pytest.raises(SessionBusyError) as info:
        await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0, clock=clock)
    assert info.value.code == "session.busy" and info.value.holder == "a" and info.value.session_id == sid
    await store.release_lease(lease)
    await store.release_lease(lease)  # idempotent
    taken = await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0, clock=clock)
    assert (taken.holder, taken.epoch) == ("b", 2)
    # Releasing a lease that is no longer held leaves the new holder alone.
    await store.release_lease(lease)
    with pytest.raises(SessionBusyError):
        await store.acquire_lease(sid, holder="c", ttl_ms=TTL, wait_s=0, clock=clock)


async def test_the_same_holder_re_enters_with_the_same_epoch(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    clock = Clock()
    first = await store.acquire_lease(sid, holder="a", ttl_ms=TTL, wait_s=0, clock=clock)
    clock.now += 500
    again = await store.acquire_lease(sid, holder="a", ttl_ms=TTL, wait_s=0, clock=clock)
    assert again.epoch == first.epoch and again.expires_at == clock.now + TTL
    rows = await store.append_messages(sid, [user("x")], expected_next_seq=1, lease=first)
    assert [r.seq for r in rows] == [1]


async def test_an_expired_lease_is_taken_over_with_a_new_epoch(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    clock = Clock()
    old = await store.acquire_lease(sid, holder="a", ttl_ms=1_000, wait_s=0, clock=clock)
    clock.now += 999
    with pytest.raises(SessionBusyError):
        await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0, clock=clock)
    clock.now += 1
    new = await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0, clock=clock)
    assert new.epoch == old.epoch + 1
    with pytest.raises(LeaseLostError) as info:
        await store.renew_lease(old, clock=clock)
    assert info.value.code == "session.lease_lost" and info.value.epoch == old.epoch
    renewed = await store.renew_lease(new, clock=clock)
    assert renewed.expires_at == clock.now + TTL and renewed.epoch == new.epoch


async def test_a_lost_lease_cannot_append_or_bump(store: SessionStore) -> None:
    clock = Clock()
    store = clocked(store, clock)
    sid = (await store.create_session()).session_id
    old = await store.acquire_lease(sid, holder="a", ttl_ms=1_000, wait_s=0)
    await store.append_messages(sid, [user("mine")], expected_next_seq=1, lease=old)
    clock.now += 5_000
    new = await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0)
    with pytest.raises(LeaseLostError) as info:
        await store.append_messages(sid, [user("stale")], expected_next_seq=2, start_send=True,
                                    stats=StatsDelta(rounds=1), lease=old)
    assert info.value.session_id == sid
    with pytest.raises(LeaseLostError):
        await store.bump_stats(sid, StatsDelta(rounds=1), lease=old)
    session = await store.get_session(sid)
    assert session is not None and (session.next_seq, session.send_count) == (2, 0)
    assert [m.content for m in await store.load_all_messages(sid)] == ["mine"]
    assert await store.get_session_stats(sid) is None
    # The new holder writes; a stale seq under a valid lease is still a WriteConflict.
    await store.append_messages(sid, [user("new")], expected_next_seq=2, lease=new)
    with pytest.raises(WriteConflict):
        await store.append_messages(sid, [user("x")], expected_next_seq=2, lease=new)
    await store.bump_stats(sid, StatsDelta(rounds=1), lease=new)


async def test_a_fenced_write_renews_the_lease(store: SessionStore) -> None:
    clock = Clock()
    store = clocked(store, clock)
    sid = (await store.create_session()).session_id
    lease = await store.acquire_lease(sid, holder="a", ttl_ms=1_000, wait_s=0)
    for seq in range(1, 4):
        clock.now += 900
        await store.append_messages(sid, [user(str(seq))], expected_next_seq=seq, lease=lease)
    # 2.7 s after acquiring a 1 s lease, it is still held: each append pushed its expiry.
    with pytest.raises(SessionBusyError):
        await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0)
    clock.now += 1_000
    assert (await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0)).epoch == 2


async def test_renew_lease_false_checks_the_lease_and_writes_it_only_where_it_must(store: SessionStore) -> None:
    clock = Clock()
    store = clocked(store, clock)
    sid = (await store.create_session()).session_id
    lease = await store.acquire_lease(sid, holder="a", ttl_ms=1_000, wait_s=0)
    clock.now += 900
    await store.append_batch(sid, [user("1")], expected_next_seq=1, lease=lease, renew_lease=False)
    held = await store.get_lease(sid)
    assert held is not None and (held.holder, held.epoch) == ("a", 1)
    if store.db.dialect.serialized_writes:  # only checked: the row keeps the acquire's expiry
        assert held.expires_at == lease.expires_at
    else:  # concurrent writers: the lease row is written (renewed) to hold it
        assert held.expires_at == clock.now + 1_000
    # Taken over: a check-only batch is refused like a renewing one, and writes nothing.
    clock.now += 5_000
    await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0)
    with pytest.raises(LeaseLostError):
        await store.append_batch(sid, [user("stale")], expected_next_seq=2, lease=lease, renew_lease=False,
                                 stats=StatsDelta(rounds=1), release_lease=True)
    assert [m.content for m in await store.load_all_messages(sid)] == ["1"]
    held = await store.get_lease(sid)
    assert held is not None and (held.holder, held.epoch) == ("b", 2) and held.expires_at > clock.now
    # A stale seq under a held lease is still a WriteConflict; an unknown session is not found.
    mine = await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0)
    with pytest.raises(WriteConflict, match="next_seq 2"):
        await store.append_batch(sid, [user("x")], expected_next_seq=1, lease=mine, renew_lease=False)
    with pytest.raises(SessionNotFoundError):
        await store.append_batch("nope", [user("x")], expected_next_seq=1, renew_lease=False,
                                 lease=Lease(session_id="nope", holder="b", epoch=1, expires_at=0, ttl_ms=TTL))
    # The release rides in the same commit.
    await store.append_batch(sid, [user("2")], expected_next_seq=2, lease=mine, renew_lease=False,
                             release_lease=True)
    held = await store.get_lease(sid)
    assert held is not None and held.expires_at == 0


async def test_busy_waits_for_wait_s_then_raises(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    await store.acquire_lease(sid, holder="a", ttl_ms=60_000, wait_s=0)
    started = time.monotonic()
    with pytest.raises(SessionBusyError, match=r"gave up after waiting 0\.[3-9]s"):
        await store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=0.3)
    assert 0.3 <= time.monotonic() - started < 3


async def test_a_waiter_gets_the_lease_when_it_is_released(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    held = await store.acquire_lease(sid, holder="a", ttl_ms=60_000, wait_s=0)
    waiter = asyncio.create_task(store.acquire_lease(sid, holder="b", ttl_ms=TTL, wait_s=30))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.release_lease(held)
    lease = await asyncio.wait_for(waiter, 10)
    assert (lease.holder, lease.epoch) == ("b", 2)


async def test_a_dead_holder_on_this_host_is_taken_over_at_once(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "import os; print(os.getpid())",
                                                 stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate()  # waits for (and reaps) the child: its pid is gone
    dead_pid = int(out)
    assert not pid_is_alive(dead_pid)
    dead_holder = f"{socket.gethostname()}:{dead_pid}:gone"
    # Plant the dead process's lease as it would have written it (a long ttl, never released).
    await _plant_lease(store, sid, holder=dead_holder, host=socket.gethostname(), pid=dead_pid)
    started = time.monotonic()
    lease = await store.acquire_lease(sid, holder="alive", ttl_ms=TTL, wait_s=30)
    assert time.monotonic() - started < 2
    assert lease.epoch == 2
    # A live holder on another host is not taken over before expiry.
    other = (await store.create_session()).session_id
    await _plant_lease(store, other, holder="elsewhere:1:x", host="another-host.invalid", pid=dead_pid)
    with pytest.raises(SessionBusyError, match="elsewhere:1:x"):
        await store.acquire_lease(other, holder="alive", ttl_ms=TTL, wait_s=0)


async def _plant_lease(store: SessionStore, sid: str, *, holder: str, host: str, pid: int) -> None:
    """Write a lease row as another process would: through the store's own acquire, then retag it."""
    lease = await store.acquire_lease(sid, holder=holder, ttl_ms=3_600_000, wait_s=0)
    assert lease.epoch == 1
    # The acquire recorded this process's host and pid; the row must name the other process.
    t = f"{store.table_prefix}session_leases"
    sql = store.db.dialect.render(f"UPDATE {t} SET host = ?, pid = ? WHERE session_id = ?")
    await store.db.write([Stmt(sql, (host, pid, sid), 1)])


async def test_closing_a_session_deletes_its_lease(store: SessionStore) -> None:
    sid = (await store.create_session(session_id="leased")).session_id
    await store.acquire_lease(sid, holder="a", ttl_ms=60_000, wait_s=0)
    assert await store.close_session(sid) == 1
    await store.create_session(session_id="leased")
    lease = await store.acquire_lease("leased", holder="b", ttl_ms=TTL, wait_s=0)
    assert lease.epoch == 1
    assert await store.delete_session("leased") == 1


async def test_lease_arguments_are_validated(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    with pytest.raises(InvalidArgumentError) as info:
        await store.acquire_lease(sid, holder="", ttl_ms=0, wait_s=-1)
    for fragment in ("holder", "ttl_ms", "wait_s"):
        assert fragment in str(info.value)
    with pytest.raises(SessionNotFoundError):
        await store.acquire_lease("ghost", holder="a", ttl_ms=TTL, wait_s=0)
    other = (await store.create_session()).session_id
    lease = await store.acquire_lease(other, holder="a", ttl_ms=TTL, wait_s=0)
    with pytest.raises(InvalidArgumentError, match="Lease of session"):
        await store.append_messages(sid, [user("x")], expected_next_seq=1, lease=lease)
    assert await store.load_all_messages(sid) == []


def test_default_holder_names_host_and_pid() -> None:
    a, b = default_lease_holder(), default_lease_holder()
    host, pid, token = a.rsplit(":", 2)
    assert host == socket.gethostname() and int(pid) == os.getpid() and token
    assert a != b
    lease = Lease(session_id="s", holder=a, epoch=1, expires_at=2, ttl_ms=3)
    with pytest.raises(AttributeError):
        lease.epoch = 5  # type: ignore[misc]


async def test_a_conditional_enqueue_needs_a_live_lease_of_another_holder(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    assert await store.enqueue_follow_up_if_running(sid, "x", not_holder="b") is None  # never leased
    lease = await store.acquire_lease(sid, holder="a", ttl_ms=60_000, wait_s=0)
    assert await store.enqueue_follow_up_if_running(sid, "mine", not_holder="a") is None  # its own send
    assert await store.enqueue_follow_up_if_running(sid, "for a", not_holder="b") == 1
    await store.release_lease(lease)
    assert await store.enqueue_follow_up_if_running(sid, "too late", not_holder="b") is None
    assert [f.content for f in await store.list_follow_ups(sid)] == ["for a"]  # nothing else written
    assert await store.enqueue_follow_up(sid, "next") == 2
    assert [f.follow_up_id for f in await store.list_follow_ups(sid)] == [1, 2]  # refused ones took no id
    with pytest.raises(SessionNotFoundError):
        await store.enqueue_follow_up_if_running("ghost", "x", not_holder="b")


async def test_a_last_append_keeps_the_lease_while_inputs_are_queued(store: SessionStore) -> None:
    """``release_lease="unless_queued"``: with a follow-up queued the lease stays held (and
    the batch says why); once it is consumed, the same kind of append lets the lease go."""
    sid = (await store.create_session()).session_id
    lease = await store.acquire_lease(sid, holder="a", ttl_ms=60_000, wait_s=0)
    await store.enqueue_follow_up(sid, "queued")
    kept = await store.append_batch(sid, [NewMessage(role="assistant", content="first")], expected_next_seq=1,
                                    lease=lease, release_lease="unless_queued")
    assert (kept.lease_released, kept.follow_ups_waiting) == (False, True)
    with pytest.raises(SessionBusyError):
        await store.acquire_lease(sid, holder="b", ttl_ms=60_000, wait_s=0)
    (queued,) = await store.list_follow_ups(sid)
    done = await store.append_batch(sid, [NewMessage(role="assistant", content="second")], expected_next_seq=2,
                                    lease=lease, release_lease="unless_queued",
                                    consume_follow_ups=[queued.follow_up_id])
    assert (done.lease_released, done.follow_ups_waiting) == (True, False)
    assert (await store.acquire_lease(sid, holder="b", ttl_ms=60_000, wait_s=0)).holder == "b"
