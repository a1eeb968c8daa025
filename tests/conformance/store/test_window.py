"""The cold-load window path returns exactly what MessageRow.to_message() would."""

from __future__ import annotations

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
