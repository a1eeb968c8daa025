"""Appends: contiguous seqs, fencing on expected_next_seq, one commit carrying it all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from power_loop.contracts.errors import InvalidArgumentError, SessionNotFoundError
from power_loop.store.dsn import open_store
from power_loop.store.port import WriteConflict
from power_loop.store.rows import NewMessage, StatsDelta
from power_loop.store.session_store import SessionStore


def user(text: str) -> NewMessage:
    return NewMessage(role="user", content=text)


async def test_seqs_are_contiguous_from_one(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    rows = await store.append_messages(sid, [user("a"), user("b")], expected_next_seq=1)
    assert [r.seq for r in rows] == [1, 2]
    rows = await store.append_messages(sid, [user("c")], expected_next_seq=3)
    assert [r.seq for r in rows] == [3]
    loaded = await store.load_all_messages(sid)
    assert [(m.seq, m.content) for m in loaded] == [(1, "a"), (2, "b"), (3, "c")]
    assert (await store.get_session(sid)).next_seq == 4  # type: ignore[union-attr]


async def test_returned_rows_equal_a_cold_load(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]
    new = [
        NewMessage(role="user", content=[{"type": "text", "text": "héllo"}], send_index=1, round_index=0),
        NewMessage(role="assistant", content=None, tool_calls=calls, round_index=0, meta={"k": ("t",)}),
        NewMessage(role="tool", content="42", tool_call_id="c1", name="f", round_index=0),
    ]
    rows = await store.append_messages(sid, new, expected_next_seq=1, start_send=True)
    assert rows == await store.load_all_messages(sid)
    assert rows == await store.load_active_messages(sid)
    assert rows[1].meta == {"k": ["t"]}
    assert [r.to_message() for r in rows][1] == {"role": "assistant", "content": None, "tool_calls": calls}


async def test_stale_expected_next_seq_is_refused_and_nothing_written(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    await store.append_messages(sid, [user("a")], expected_next_seq=1)
    with pytest.raises(WriteConflict) as info:
        await store.append_messages(sid, [user("stale")], expected_next_seq=1, start_send=True,
                                    stats=StatsDelta(rounds=1))
    assert info.value.code == "store.write_conflict"
    assert "next_seq 2" in str(info.value)
    assert [m.content for m in await store.load_all_messages(sid)] == ["a"]
    session = await store.get_session(sid)
    assert session is not None and session.next_seq == 2 and session.send_count == 0
    assert await store.get_session_stats(sid) is None


async def test_append_to_unknown_session_raises_not_found(store: SessionStore) -> None:
    with pytest.raises(SessionNotFoundError) as info:
        await store.append_messages("ghost", [user("a")], expected_next_seq=1)
    assert info.value.code == "session.not_found" and info.value.session_id == "ghost"
    assert await store.load_all_messages("ghost") == []


async def test_one_commit_per_append_with_stats_and_follow_ups(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    await store.enqueue_follow_up(sid, "later")
    counters = store.db.counters
    counters.reset()
    await store.append_messages(sid, [user("a"), user("b"), user("c")], expected_next_seq=1, start_send=True,
                                stats=StatsDelta(rounds=2, llm_calls=2, total_tokens=30),
                                consume_follow_ups=[1])
    assert counters.commits == 1
    assert counters.reads == 0


async def test_stats_land_in_the_same_commit(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    await store.append_messages(sid, [user("a")], expected_next_seq=1, start_send=True,
                                stats=StatsDelta(rounds=1, llm_calls=1, prompt_tokens=10, completion_tokens=5,
                                                 total_tokens=15))
    first = await store.get_session_stats(sid)
    assert first is not None
    assert (first.sends, first.rounds, first.llm_calls, first.total_tokens) == (1, 1, 1, 15)
    assert first.first_send_at == first.last_send_at
    await store.append_messages(sid, [user("b")], expected_next_seq=2, start_send=True,
                                stats=StatsDelta(rounds=2, tool_calls=3, total_tokens=5))
    second = await store.get_session_stats(sid)
    assert second is not None
    assert (second.sends, second.rounds, second.tool_calls, second.total_tokens) == (2, 3, 3, 20)
    assert second.first_send_at == first.first_send_at
    assert second.last_send_at is not None and second.last_send_at >= first.last_send_at  # type: ignore[operator]
    session = await store.get_session(sid)
    assert session is not None and session.send_count == 2


async def test_bump_stats_without_messages(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    await store.bump_stats(sid, StatsDelta(llm_calls=1))
    await store.bump_stats(sid, StatsDelta(llm_calls=2))
    stats = await store.get_session_stats(sid)
    assert stats is not None and stats.sends == 2 and stats.llm_calls == 3
    with pytest.raises(SessionNotFoundError):
        await store.bump_stats("ghost", StatsDelta())
    assert await store.get_session_stats("ghost") is None
    with pytest.raises(InvalidArgumentError, match="rounds=-1"):
        await store.bump_stats(sid, StatsDelta(rounds=-1))


async def test_list_session_stats_most_recent_first(store: SessionStore) -> None:
    for sid in ("a-old", "z-new"):
        await store.create_session(session_id=sid)
    await store.bump_stats("a-old", StatsDelta(rounds=1))
    old = await store.get_session_stats("a-old")
    assert old is not None and old.last_send_at is not None
    # Bump until the clock has moved on (a tie would sort by id: a-old first).
    new_at = old.last_send_at
    while new_at <= old.last_send_at:
        await store.bump_stats("z-new", StatsDelta(rounds=1))
        new = await store.get_session_stats("z-new")
        assert new is not None and new.last_send_at is not None
        new_at = new.last_send_at
    assert [s.session_id for s in await store.list_session_stats()] == ["z-new", "a-old"]


async def test_follow_ups_are_queued_in_order_and_consumed_atomically(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    assert await store.enqueue_follow_up(sid, "one") == 1
    assert await store.enqueue_follow_up(sid, {"text": "two"}) == 2
    assert await store.enqueue_follow_up(sid, ["three"]) == 3
    queued = await store.list_follow_ups(sid)
    assert [(f.follow_up_id, f.content) for f in queued] == [(1, "one"), (2, {"text": "two"}), (3, ["three"])]
    await store.append_messages(sid, [user("one"), user("two")], expected_next_seq=1,
                                consume_follow_ups=[1, 2])
    assert [f.follow_up_id for f in await store.list_follow_ups(sid)] == [3]
    # Consuming one that is gone fails the whole append: no message, nothing consumed.
    with pytest.raises(WriteConflict, match="not all queued"):
        await store.append_messages(sid, [user("x")], expected_next_seq=3, consume_follow_ups=[2, 3])
    assert [f.follow_up_id for f in await store.list_follow_ups(sid)] == [3]
    assert len(await store.load_all_messages(sid)) == 2
    # Ids are never reused after consumption.
    assert await store.enqueue_follow_up(sid, "four") == 2
    assert [f.follow_up_id for f in await store.list_follow_ups(sid)] == [3, 4]


async def test_follow_up_validation(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    with pytest.raises(SessionNotFoundError):
        await store.enqueue_follow_up("ghost", "x")
    with pytest.raises(InvalidArgumentError, match="JSON"):
        await store.enqueue_follow_up(sid, object())
    with pytest.raises(InvalidArgumentError, match="repeat"):
        await store.append_messages(sid, [user("a")], expected_next_seq=1, consume_follow_ups=[1, 1])
    assert await store.list_follow_ups(sid) == []
    assert await store.load_all_messages(sid) == []


async def test_bad_messages_are_refused_before_writing(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    with pytest.raises(InvalidArgumentError) as info:
        await store.append_messages(sid, [user("ok"), NewMessage(role="user", content={1, 2}),
                                          NewMessage(role="", content="x")], expected_next_seq=1)
    assert "message 1" in str(info.value) and "message 2" in str(info.value)
    with pytest.raises(InvalidArgumentError, match="expected_next_seq"):
        await store.append_messages(sid, [user("a")], expected_next_seq=0)
    with pytest.raises(InvalidArgumentError, match=r"message 0: tool_calls\[1\] must be an object"):
        await store.append_messages(sid, [NewMessage(role="assistant", content=None, tool_calls=[{}, ["x"]])],
                                    expected_next_seq=1)
    session = await store.get_session(sid)
    assert session is not None and session.next_seq == 1
    assert await store.load_all_messages(sid) == []


async def test_large_batch_keeps_contiguous_seqs(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    rows = await store.append_messages(sid, [user(str(i)) for i in range(600)], expected_next_seq=1)
    assert [r.seq for r in rows] == list(range(1, 601))
    loaded = await store.load_all_messages(sid)
    assert [m.content for m in loaded] == [str(i) for i in range(600)]


async def test_concurrent_appenders_in_one_process_never_corrupt_seq(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id

    async def writer(tag: str, count: int) -> None:
        done = 0
        while done < count:
            session = await store.get_session(sid)
            assert session is not None
            try:
                await store.append_messages(sid, [user(f"{tag}{done}")], expected_next_seq=session.next_seq)
            except WriteConflict:
                continue
            done += 1

    await asyncio.gather(*(writer(t, 10) for t in "abcd"))
    loaded = await store.load_all_messages(sid)
    assert [m.seq for m in loaded] == list(range(1, 41))
    assert sorted(m.content for m in loaded) == sorted(f"{t}{i}" for t in "abcd" for i in range(10))


async def test_two_sqlite_stores_on_one_file_fence_each_other(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    a = await open_store(path)
    b = await open_store(path)
    try:
        sid = (await a.create_session()).session_id
        await a.append_messages(sid, [user("a1")], expected_next_seq=1)
        # b read next_seq=2, then a appended again: b is stale.
        seen = await b.get_session(sid)
        assert seen is not None and seen.next_seq == 2
        await a.append_messages(sid, [user("a2")], expected_next_seq=2)
        with pytest.raises(WriteConflict):
            await b.append_messages(sid, [user("b-stale")], expected_next_seq=seen.next_seq)

        async def writer(store: SessionStore, tag: str, count: int) -> int:
            conflicts = done = 0
            while done < count:
                session = await store.get_session(sid)
                assert session is not None
                try:
                    await store.append_messages(sid, [user(f"{tag}{done}")],
                                                expected_next_seq=session.next_seq)
                except WriteConflict:
                    conflicts += 1
                    continue
                done += 1
            return conflicts

        await asyncio.gather(writer(a, "a", 25), writer(b, "b", 25))
        for s in (a, b):
            loaded = await s.load_all_messages(sid)
            assert [m.seq for m in loaded] == list(range(1, 53))
        session = await b.get_session(sid)
        assert session is not None and session.next_seq == 53
    finally:
        await a.close()
        await b.close()
