"""export_session / import_session: the whole durable state, restored as an independent root."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from power_loop.contracts.errors import InvalidArgumentError, SessionNotFoundError
from power_loop.store.rows import NewMessage, StatsDelta
from power_loop.store.schema import SCHEMA_VERSION
from power_loop.store.session_store import SessionStore


async def build(store: SessionStore, sid: str = "src") -> None:
    """A session with messages (incl. tool calls), stats, follow-ups (one consumed), a child."""
    await store.create_session(session_id=sid, metadata={"owner": "ü"}, system_prompt="be brief", model="m",
                               config={"max_rounds": 2})
    calls = [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 1}"}}]
    await store.enqueue_follow_up(sid, "first")
    await store.enqueue_follow_up(sid, {"text": "second"})
    await store.append_messages(sid, [
        NewMessage(role="user", content="hi", send_index=1, round_index=0),
        NewMessage(role="assistant", content=None, tool_calls=calls, round_index=0, send_index=1,
                   meta={"k": [1, 2]}),
        NewMessage(role="tool", content="2", tool_call_id="c1", name="add", round_index=0, send_index=1),
        NewMessage(role="assistant", content="two", round_index=1, send_index=1),
    ], expected_next_seq=1, start_send=True, stats=StatsDelta(rounds=2, llm_calls=2, total_tokens=9),
        consume_follow_ups=[1])
    await store.create_session(session_id=f"{sid}-child", parent_session_id=sid, kind="subagent",
                               spawn_depth=1, lifecycle="linked")


async def observable(store: SessionStore, sid: str) -> dict[str, Any]:
    """Everything the public API shows about a session, minus its id."""
    session = await store.get_session(sid)
    assert session is not None
    stats = await store.get_session_stats(sid)
    return {
        "session": {k: getattr(session, k) for k in ("system_prompt", "model", "config", "metadata", "status",
                                                     "next_seq", "send_count", "created_at", "updated_at")},
        "messages": [(m.seq, m.to_message(), m.round_index, m.send_index, m.state, m.meta, m.created_at)
                     for m in await store.load_all_messages(sid)],
        "stats": None if stats is None else {k: v for k, v in vars_of(stats).items() if k != "session_id"},
        "follow_ups": [(f.follow_up_id, f.content, f.created_at) for f in await store.list_follow_ups(sid)],
    }


def vars_of(row: object) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__slots__}  # type: ignore[attr-defined]


def compacted_archive(sid: str = "old") -> dict[str, Any]:
    """An archive written by hand: messages in every state, as a folding store would hold them."""
    def message(seq: int, role: str, content: Any, state: str) -> dict[str, Any]:
        return {"session_id": sid, "seq": seq, "role": role, "content": content, "state": state,
                "meta": {}, "created_at": 1000 + seq}

    return {
        "format": "power_loop.session", "schema_version": 1, "session_id": sid, "exported_at": 5,
        "tables": {
            "sessions": [{"session_id": sid, "created_at": 1, "updated_at": 2, "config": {},
                          "status": "active", "kind": "root", "metadata": {}, "next_seq": 6, "send_count": 2,
                          "follow_up_seq": 0}],
            "messages": [message(1, "user", "old q", "compacted_out"),
                         message(2, "assistant", "old a", "compacted_out"),
                         message(3, "user", "noise", "dropped"),
                         message(4, "user", "summary", "active"),
                         message(5, "assistant", "ok", "active")],
        },
    }


async def test_export_is_complete_and_json_serialisable(store: SessionStore) -> None:
    await build(store)
    archive = await store.export_session("src")
    assert json.loads(json.dumps(archive)) == archive
    assert (archive["format"], archive["schema_version"], archive["session_id"]) == (
        "power_loop.session", SCHEMA_VERSION, "src")
    tables = archive["tables"]
    assert set(tables) == {"sessions", "messages", "session_stats", "follow_ups"}  # leases are runtime state
    assert [m["seq"] for m in tables["messages"]] == [1, 2, 3, 4]
    assert tables["messages"][1]["tool_calls"][0]["id"] == "c1"
    assert tables["messages"][1]["meta"] == {"k": [1, 2]}
    assert [f["content"] for f in tables["follow_ups"]] == [{"text": "second"}]
    assert tables["sessions"][0]["follow_up_seq"] == 2 and tables["sessions"][0]["next_seq"] == 5
    assert tables["session_stats"][0]["total_tokens"] == 9
    with pytest.raises(SessionNotFoundError):
        await store.export_session("ghost")


async def test_import_under_a_new_id_restores_everything_and_continues(store: SessionStore) -> None:
    await build(store)
    archive = await store.export_session("src")
    assert await store.import_session(archive, new_session_id="copy") == "copy"
    assert await observable(store, "copy") == await observable(store, "src")
    rows = await store.append_messages("copy", [NewMessage(role="user", content="more")], expected_next_seq=5,
                                       start_send=True)
    assert [r.seq for r in rows] == [5]
    assert await store.enqueue_follow_up("copy", "third") == 2
    assert [f.follow_up_id for f in await store.list_follow_ups("copy")] == [2, 3]
    # The original is untouched by what happens to the copy.
    assert len(await store.load_all_messages("src")) == 4


async def test_a_subagent_imports_as_an_independent_root(store: SessionStore) -> None:
    await build(store)
    archive = await store.export_session("src-child")
    new_id = await store.import_session(archive, new_session_id="adopted")
    row = await store.get_session(new_id)
    assert row is not None
    assert (row.kind, row.parent_session_id, row.spawn_depth, row.lifecycle) == ("root", None, 0, None)
    assert {c.session_id for c in await store.list_children("src")} == {"src-child"}


async def test_compacted_and_dropped_messages_survive_a_round_trip(store: SessionStore) -> None:
    assert await store.import_session(compacted_archive()) == "old"
    assert [m.state for m in await store.load_all_messages("old")] == [
        "compacted_out", "compacted_out", "dropped", "active", "active"]
    assert [m.content for m in await store.load_active_messages("old")] == ["summary", "ok"]
    again = await store.export_session("old")
    nullable = dict.fromkeys(("name", "tool_calls", "tool_call_id", "round_index", "send_index"))
    expected = [{**nullable, **m} for m in compacted_archive()["tables"]["messages"]]
    assert again["tables"]["messages"] == expected
    rows = await store.append_messages("old", [NewMessage(role="user", content="next")], expected_next_seq=6)
    assert [r.seq for r in rows] == [6]


async def test_an_existing_id_is_refused_unless_replace(store: SessionStore) -> None:
    await build(store)
    archive = await store.export_session("src")
    before = await observable(store, "src")
    with pytest.raises(InvalidArgumentError, match=r"'src' already exists.*replace=True") as info:
        await store.import_session(archive)
    assert info.value.code == "invalid_argument"
    assert await observable(store, "src") == before
    # replace=True swaps the whole session for the archive's, atomically.
    await store.append_messages("src", [NewMessage(role="user", content="later")], expected_next_seq=5)
    await store.acquire_lease("src", holder="h", ttl_ms=60_000, wait_s=0)
    assert await store.import_session(archive, replace=True) == "src"
    assert await observable(store, "src") == before
    lease = await store.acquire_lease("src", holder="other", ttl_ms=1000, wait_s=0)
    assert lease.epoch == 1  # the old lease went with the replaced session


async def test_a_newer_archive_is_refused_and_nothing_written(store: SessionStore) -> None:
    await build(store)
    archive = await store.export_session("src")
    archive["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(InvalidArgumentError, match=f"schema_version {SCHEMA_VERSION + 1} is newer"):
        await store.import_session(archive, new_session_id="future")
    assert await store.get_session("future") is None
    assert await store.load_all_messages("future") == []


@pytest.mark.parametrize(("mutate", "fragments"), [
    (lambda a: a.update(tables=[]), ["tables must be an object"]),
    (lambda a: a.update(schema_version="2"), ["schema_version must be an int"]),
    (lambda a: a.update(format="other"), ["format 'other'"]),
    (lambda a: a["tables"].update(sessions=[]), ["exactly one row"]),
    (lambda a: a["tables"].update(notes=[]), ["unknown table(s) notes"]),
    (lambda a: a["tables"]["messages"][0].update(seq="1", extra=1),
     ["messages[0].seq must be an int", "unknown column(s) extra"]),
    (lambda a: a["tables"]["messages"][1].update(state="gone", session_id="x"),
     ["messages[1].state 'gone'", "messages[1].session_id 'x'"]),
    (lambda a: a["tables"]["messages"][2].update(seq=1), ["repeats primary key"]),
    (lambda a: a["tables"]["messages"][0].pop("role"), ["lacks column role"]),
    (lambda a: a["tables"]["sessions"][0].update(config=[1]), ["sessions[0].config must be an object"]),
    (lambda a: a["tables"]["messages"].append({**a["tables"]["messages"][0], "seq": 9}),
     ["seq values must lie"]),
    (lambda a: (a["tables"]["messages"][0].update(tool_calls={}),
                a["tables"]["messages"][1].update(tool_calls=[["x"]])),
     ["messages[0]: tool_calls must be a list or None, got dict",
      "messages[1]: tool_calls[0] must be an object"]),
])
async def test_malformed_archives_name_every_problem_and_write_nothing(
    store: SessionStore, mutate: Any, fragments: list[str]
) -> None:
    await build(store)
    archive = copy.deepcopy(await store.export_session("src"))
    mutate(archive)
    with pytest.raises(InvalidArgumentError) as info:
        await store.import_session(archive, new_session_id="bad")
    for fragment in fragments:
        assert fragment in str(info.value)
    assert "database was not changed" in str(info.value)
    assert await store.get_session("bad") is None
    assert await store.load_all_messages("bad") == []


async def test_not_an_archive(store: SessionStore) -> None:
    with pytest.raises(InvalidArgumentError, match="an archive is a dict"):
        await store.import_session([])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="new_session_id must be a non-empty string"):
        await store.import_session(compacted_archive(), new_session_id="")
    assert await store.get_session("old") is None


async def test_imported_json_is_stored_as_it_loads(store: SessionStore) -> None:
    """An archive value whose keys collide once made strings is stored as the text of what
    it loads as, as an append stores it: the cold window's wire JSON stays exact."""
    from test_window import check_window

    archive = compacted_archive("collide")
    archive["tables"]["messages"][3]["content"] = {1: "a", "1": "b"}
    sid = await store.import_session(archive)
    assert (await store.load_active_messages(sid))[0].content == {"1": "b"}
    await check_window(store, sid)
