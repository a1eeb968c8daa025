"""close_session: a session and everything it owns go, with its descendants on cascade."""

from __future__ import annotations

from power_loop.store.rows import NewMessage, StatsDelta
from power_loop.store.session_store import SessionStore


async def populate(store: SessionStore, sid: str, *, parent: str | None = None, depth: int = 0) -> None:
    kind = "root" if parent is None else "subagent"
    await store.create_session(session_id=sid, parent_session_id=parent, kind=kind, spawn_depth=depth)
    await store.append_messages(sid, [NewMessage(role="user", content=f"hi {sid}")], expected_next_seq=1,
                                start_send=True, stats=StatsDelta(rounds=1))
    await store.enqueue_follow_up(sid, f"later {sid}")


async def assert_gone(store: SessionStore, sid: str) -> None:
    assert await store.get_session(sid) is None
    assert await store.load_all_messages(sid) == []
    assert await store.get_session_stats(sid) is None
    assert await store.list_follow_ups(sid) == []


async def assert_intact(store: SessionStore, sid: str) -> None:
    assert await store.get_session(sid) is not None
    assert len(await store.load_all_messages(sid)) == 1
    assert await store.get_session_stats(sid) is not None
    assert len(await store.list_follow_ups(sid)) == 1


async def build_tree(store: SessionStore) -> None:
    # root ─┬─ c1 ── g1 ── gg1
    #       └─ c2
    # other (an unrelated root)
    await populate(store, "root")
    await populate(store, "c1", parent="root", depth=1)
    await populate(store, "c2", parent="root", depth=1)
    await populate(store, "g1", parent="c1", depth=2)
    await populate(store, "gg1", parent="g1", depth=3)
    await populate(store, "other")


async def test_cascade_deletes_the_whole_tree_and_nothing_else(store: SessionStore) -> None:
    await build_tree(store)
    assert await store.close_session("root") == 5
    for sid in ("root", "c1", "c2", "g1", "gg1"):
        await assert_gone(store, sid)
    await assert_intact(store, "other")
    assert [s.session_id for s in await store.list_session_stats()] == ["other"]


async def test_closing_a_subtree_keeps_its_ancestors(store: SessionStore) -> None:
    await build_tree(store)
    assert await store.close_session("c1") == 3
    for sid in ("c1", "g1", "gg1"):
        await assert_gone(store, sid)
    for sid in ("root", "c2", "other"):
        await assert_intact(store, sid)
    assert [c.session_id for c in await store.list_children("root")] == ["c2"]


async def test_without_cascade_children_survive(store: SessionStore) -> None:
    await build_tree(store)
    assert await store.close_session("root", cascade=False) == 1
    await assert_gone(store, "root")
    for sid in ("c1", "c2", "g1", "gg1", "other"):
        await assert_intact(store, sid)
    child = await store.get_session("c1")
    assert child is not None and child.parent_session_id == "root"


async def test_unknown_session_deletes_nothing(store: SessionStore) -> None:
    await populate(store, "kept")
    assert await store.close_session("ghost") == 0
    assert await store.close_session("ghost", cascade=False) == 0
    await assert_intact(store, "kept")


async def test_a_closed_id_can_be_created_again_from_scratch(store: SessionStore) -> None:
    await populate(store, "again")
    assert await store.close_session("again") == 1
    row = await store.create_session(session_id="again")
    assert row.next_seq == 1 and row.send_count == 0
    rows = await store.append_messages("again", [NewMessage(role="user", content="x")], expected_next_seq=1)
    assert [r.seq for r in rows] == [1]
    assert await store.enqueue_follow_up("again", "f") == 1
    assert [f.follow_up_id for f in await store.list_follow_ups("again")] == [1]
