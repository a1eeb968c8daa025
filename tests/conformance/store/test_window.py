"""The cold-load window path returns exactly what MessageRow.to_message() would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_targets import Backend, drop_prefix

from power_loop.store.dsn import open_store
from power_loop.store.messages import window_from_json
from power_loop.store.port import Stmt
from power_loop.store.rows import NewMessage
from power_loop.store.session_store import SessionStore


async def test_load_active_window_equals_rows_as_messages(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    calls = [{"id": "c1", "type": "function", "function": {"name": "fs.read_file", "arguments": '{"p": "ü"}'}}]
    messages = [
        NewMessage(role="user", content="héllo", round_index=None, send_index=1),
        NewMessage(role="assistant", content=None, tool_calls=calls, round_index=1, send_index=1),
        NewMessage(role="tool", content='{"ok": true}', tool_call_id="c1", round_index=1, send_index=1),
        NewMessage(role="user", content=[{"type": "text", "text": "parts"}], name="alice", send_index=2),
        NewMessage(role="assistant", content="done", tool_calls=[], round_index=2, send_index=2),
    ]
    await store.append_messages(sid, messages, expected_next_seq=1, start_send=True)
    rows = await store.load_active_messages(sid)
    window, seqs, rounds = await store.load_active_window(sid)
    assert window == [r.to_message() for r in rows]
    assert [list(m) for m in window] == [list(r.to_message()) for r in rows]  # same key order
    assert seqs == [r.seq for r in rows] and rounds == [r.round_index for r in rows]
    assert await store.load_active_window("no-such-session") == ([], [], [])


def wire_of(messages: list[dict[str, Any]]) -> bytes:
    """What the transports send for ``messages``: compact JSON, items joined by ``,``."""
    return json.dumps(messages, ensure_ascii=False, separators=(",", ":"), allow_nan=False)[1:-1].encode()


async def check_window(store: SessionStore, sid: str) -> None:
    """``load_window`` equals the row path, key order included, and its wire JSON (where
    the database built it) is exactly the transports' encoding of those messages."""
    rows = await store.load_active_messages(sid)
    expected = [r.to_message() for r in rows]
    loaded = await store.load_window(sid)
    assert loaded.messages == expected
    assert [list(m) for m in loaded.messages] == [list(m) for m in expected]
    assert loaded.seqs == [r.seq for r in rows] and loaded.round_indexes == [r.round_index for r in rows]
    if store.db.dialect.window_json("t", "1 = 1") is not None and rows:
        assert loaded.encoded is not None
    if loaded.encoded is not None:
        assert loaded.encoded == wire_of(expected)


# Any character but a surrogate or NUL (which PostgreSQL text cannot hold): control
# characters, quotes, backslashes, U+2028 and astral characters are what escaping differs on.
CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00")
TEXT = st.text(CHARS, max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    # int keys: {1: "a", "1": "b"} encodes both keys and decodes to one, which the store canonicalises
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT | st.integers(0, 2), inner, max_size=3),
    max_leaves=8,
)
CALL = st.fixed_dictionaries({"id": TEXT, "type": st.just("function"),
                              "function": st.fixed_dictionaries({"name": TEXT, "arguments": TEXT})})
MESSAGE = st.builds(
    NewMessage, role=st.sampled_from(["user", "assistant", "tool"]) | st.text(CHARS, min_size=1, max_size=6),
    content=JSON, name=st.none() | TEXT, tool_calls=st.none() | st.lists(CALL, max_size=2),
    tool_call_id=st.none() | TEXT, round_index=st.none() | st.integers(0, 9),
)


def test_window_json_equals_the_row_path(backend: Backend) -> None:
    """Hypothesis: any appended history loads through ``load_window`` exactly as row by row."""
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(open_store(backend.dsn(), table_prefix=backend.prefix()))

    @settings(max_examples=25 if backend.is_server else 60, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(batches=st.lists(st.lists(MESSAGE, min_size=1, max_size=4), min_size=1, max_size=3))
    def run(batches: list[list[NewMessage]]) -> None:
        async def go() -> None:
            row = await store.create_session()
            seq = row.next_seq
            for batch in batches:
                appended = await store.append_messages(row.session_id, batch, expected_next_seq=seq)
                seq = appended[-1].seq + 1
            await check_window(store, row.session_id)

        loop.run_until_complete(go())

    try:
        run()
    finally:
        loop.run_until_complete(drop_prefix(store))
        loop.run_until_complete(store.close())
        loop.close()


async def test_window_skips_folded_rows(store: SessionStore) -> None:
    """Compacted and dropped rows leave seq gaps in the active window; both paths agree."""
    from test_archive import compacted_archive

    sid = await store.import_session(compacted_archive("gappy"))
    await store.append_messages(sid, [NewMessage(role="user", content="next")], expected_next_seq=6)
    await check_window(store, sid)
    loaded = await store.load_window(sid)
    assert loaded.seqs == [4, 5, 6] and [m["content"] for m in loaded.messages] == ["summary", "ok", "next"]


async def damage(store: SessionStore, sid: str, seq: int, column: str, text: str) -> None:
    """Overwrite one stored JSON text behind the store's back."""
    table = f"{store.table_prefix}messages"
    sql = store.db.dialect.render(f"UPDATE {table} SET {column} = ? WHERE session_id = ? AND seq = ?")
    await store.db.write([Stmt(sql, (text, sid, seq))])


@pytest.mark.parametrize("text", ['"x","name":"evil"', '"a","content":"b"', '"unterminated', ""])
async def test_a_damaged_row_fails_the_window_as_it_fails_alone(store: SessionStore, text: str) -> None:
    """A stored text that is not one JSON value could splice into valid JSON (an injected
    key): the one-value read refuses it and the row path raises that row's own error."""
    sid = (await store.create_session()).session_id
    await store.append_messages(sid, [NewMessage(role="user", content="ok"), NewMessage(role="user", content="x")],
                                expected_next_seq=1)
    await damage(store, sid, 2, "content", text)
    with pytest.raises(ValueError):  # json.JSONDecodeError, from the row path
        await store.load_window(sid)


async def test_a_damaged_tool_calls_text_fails_the_window_too(store: SessionStore) -> None:
    sid = (await store.create_session()).session_id
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    await store.append_messages(sid, [NewMessage(role="assistant", content=None, tool_calls=calls)],
                                expected_next_seq=1)
    await damage(store, sid, 1, "tool_calls", '[{"id":"c"}],"role":"system"')
    with pytest.raises(ValueError):
        await store.load_window(sid)


async def test_text_the_store_did_not_write_still_loads_the_same_messages(store: SessionStore) -> None:
    """Valid JSON written by another encoder (here with spaces) loads as the same
    messages on every path. SQLite sees that it is not minified and reads rows, so its
    wire JSON stays exact; PostgreSQL cannot tell cheaply and splices it as stored."""
    sid = (await store.create_session()).session_id
    await store.append_messages(sid, [NewMessage(role="user", content={"a": [1, 2]})], expected_next_seq=1)
    await damage(store, sid, 1, "content", '{"a": [1, 2]}')
    loaded = await store.load_window(sid)
    assert loaded.messages == [{"role": "user", "content": {"a": [1, 2]}}]
    if store.dialect_name == "sqlite":
        assert loaded.encoded is None


def test_window_from_json_refuses_what_it_cannot_trust() -> None:
    ok = (b'{"role":"user","content":"a"},{"role":"user","content":"b"}', "1,2", "null,3")
    assert window_from_json(ok) is not None
    assert window_from_json((ok[0], "2,1", ok[2])) is None  # out of seq order
    assert window_from_json((ok[0], "1", "null")) is None  # one more message than seqs
    assert window_from_json((b'{"role":"user","content":"a"}', "1,2", "null,3")) is None  # a row was refused
    assert window_from_json((b'{"role":"user","content":"a"},{', "1,2", "null,3")) is None  # does not parse
    assert window_from_json((b'{"role":"user","content":"\xed\xa0\x80"}', "1", "null")) is None  # not UTF-8
    assert window_from_json(None) == window_from_json((None, None, None))
    assert window_from_json((None, "1", "null")) is None  # the only row was refused
    loaded = window_from_json(ok)
    assert loaded is not None and loaded.encoded == ok[0] and loaded.round_indexes == [None, 3]


async def test_keys_that_collide_as_strings_are_stored_as_they_load(store: SessionStore) -> None:
    """``{1: "a", "1": "b"}`` encodes both keys and loads as ``{"1": "b"}``: the store keeps
    the text of what loads, so the window's wire JSON still equals the transports' encoding."""
    sid = (await store.create_session()).session_id
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}, 0: "x", "0": "y"}]
    rows = await store.append_messages(sid, [
        NewMessage(role="user", content={1: "a", "1": "b", "k": [{True: 1, "true": 2}]}),
        NewMessage(role="assistant", content=None, tool_calls=calls),
    ], expected_next_seq=1)
    assert rows[0].content == {"1": "b", "k": [{"true": 2}]} and rows[1].tool_calls == [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}, "0": "y"}]
    await check_window(store, sid)
    assert [r.to_message() for r in rows] == (await store.load_window(sid)).messages


async def test_every_code_point_is_escaped_as_the_transports_escape_it(store: SessionStore) -> None:
    """The database quotes ``name`` and ``tool_call_id`` itself (``json_quote``, ``to_json``):
    across every code point but NUL and the surrogates, its text equals the wire encoder's."""
    points = "".join(chr(c) for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF)
    size = 4096  # characters per message: within every engine's TEXT column
    pieces = [points[i:i + size] for i in range(0, len(points), size)]
    sid = (await store.create_session()).session_id
    await store.append_messages(sid, [NewMessage(role="tool", content=None, name=p, tool_call_id=p[:64])
                                      for p in pieces], expected_next_seq=1)  # ids are short columns
    await check_window(store, sid)
