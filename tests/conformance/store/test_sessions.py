"""Sessions: create, read back, validation before writing, sub-agent children."""

from __future__ import annotations

import pytest

from power_loop.contracts.errors import InvalidArgumentError, SessionNotFoundError
from power_loop.store.rows import SessionKind, SessionRow, SubagentLifecycle
from power_loop.store.schema import SCHEMA_VERSION
from power_loop.store.session_store import SessionStore


async def test_create_session_round_trips_every_field(store: SessionStore) -> None:
    row = await store.create_session(
        session_id="s-1", metadata={"user": "ü", "n": [1, 2]}, system_prompt="be brief", model="m-1",
        config={"max_rounds": 3},
    )
    assert row.session_id == "s-1"
    assert row.next_seq == 1 and row.send_count == 0
    assert row.status == "active" and row.kind == "root" and row.spawn_depth == 0
    loaded = await store.get_session("s-1")
    assert loaded == row
    assert loaded.metadata == {"user": "ü", "n": [1, 2]}
    assert loaded.config == {"max_rounds": 3}
    assert loaded.created_at == loaded.updated_at > 0


async def test_default_session_id_is_a_fresh_uuid_hex(store: SessionStore) -> None:
    a = await store.create_session()
    b = await store.create_session()
    assert a.session_id != b.session_id
    assert len(a.session_id) == 32 and int(a.session_id, 16) >= 0


async def test_get_unknown_session_is_none(store: SessionStore) -> None:
    assert await store.get_session("nope") is None


async def test_existing_id_is_refused_and_row_unchanged(store: SessionStore) -> None:
    first = await store.create_session(session_id="dup", metadata={"v": 1})
    with pytest.raises(InvalidArgumentError, match="already exists") as info:
        await store.create_session(session_id="dup", metadata={"v": 2})
    assert info.value.code == "invalid_argument"
    assert await store.get_session("dup") == first


async def test_non_json_metadata_is_refused_before_writing(store: SessionStore) -> None:
    with pytest.raises(InvalidArgumentError, match="metadata is not JSON-serialisable"):
        await store.create_session(session_id="bad", metadata={"s": {1, 2}})
    assert await store.get_session("bad") is None


async def test_every_bad_field_is_named_at_once(store: SessionStore) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await store.create_session(session_id="x", config={"f": float("nan")}, kind="robot",
                                   lifecycle="forever", spawn_depth=-1)
    message = str(info.value)
    for fragment in ("config", "kind 'robot'", "lifecycle 'forever'", "spawn_depth"):
        assert fragment in message
    assert await store.get_session("x") is None


async def test_spawn_depth_beyond_the_limit_is_refused(store: SessionStore) -> None:
    await store.create_session(session_id="root")
    store.max_spawn_depth = 1
    with pytest.raises(InvalidArgumentError, match="exceeds max_spawn_depth 1"):
        await store.create_session(parent_session_id="root", kind="subagent", spawn_depth=2)
    with pytest.raises(InvalidArgumentError):
        store.max_spawn_depth = -1


async def test_children_are_listed_oldest_first(store: SessionStore) -> None:
    await store.create_session(session_id="p")
    c1 = await store.create_session(session_id="c1", parent_session_id="p", kind="subagent", spawn_depth=1,
                                    spawn_tool_call_id="call_1", lifecycle="linked")
    c2 = await store.create_session(session_id="c2", parent_session_id="p", kind="subagent", spawn_depth=1,
                                    lifecycle="ephemeral")
    await store.create_session(session_id="g", parent_session_id="c1", kind="subagent", spawn_depth=2)
    children = await store.list_children("p")
    assert {c.session_id for c in children} == {"c1", "c2"}
    assert sorted(children, key=lambda r: (r.created_at, r.session_id)) == children
    by_id: dict[str, SessionRow] = {c.session_id: c for c in children}
    assert by_id["c1"] == c1 and by_id["c2"] == c2
    assert by_id["c1"].spawn_tool_call_id == "call_1" and by_id["c1"].lifecycle == "linked"
    assert await store.list_children("nobody") == []


async def test_enum_members_are_stored_as_their_values(store: SessionStore) -> None:
    await store.create_session(session_id="p")
    row = await store.create_session(session_id="e", parent_session_id="p", kind=SessionKind.SUBAGENT,
                                     lifecycle=SubagentLifecycle.DETACHED, spawn_depth=1)
    loaded = await store.get_session("e")
    assert loaded == row
    assert (type(loaded.kind), loaded.kind, loaded.lifecycle) == (str, "subagent", "detached")


async def test_unknown_parent_is_refused(store: SessionStore) -> None:
    with pytest.raises(SessionNotFoundError) as info:
        await store.create_session(session_id="orphan", parent_session_id="ghost", kind="subagent",
                                   spawn_depth=1)
    assert info.value.session_id == "ghost"
    assert await store.get_session("orphan") is None


async def test_store_attributes(store: SessionStore) -> None:
    assert store.schema_version == SCHEMA_VERSION
    assert store.max_spawn_depth == 3
    assert store.dialect_name in {"sqlite", "postgres", "mysql"}
    assert store.table_prefix.endswith("pl_")


async def test_close_is_idempotent_and_async_with_closes(store: SessionStore) -> None:
    async with store as same:
        assert same is store
    await store.close()
