"""vacuum, checkpoint and backup: real on SQLite, harmless no-ops where meaningless."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from store_targets import Backend

from power_loop.contracts.errors import InvalidArgumentError, SessionNotFoundError
from power_loop.store.dsn import open_store
from power_loop.store.rows import NewMessage
from power_loop.store.session_store import SessionStore


async def fill(store: SessionStore, sid: str, n: int) -> None:
    await store.create_session(session_id=sid)
    await store.append_messages(sid, [NewMessage(role="user", content="x" * 2000) for _ in range(n)],
                                expected_next_seq=1)


async def test_vacuum_and_checkpoint_keep_the_data(store: SessionStore) -> None:
    await fill(store, "big", 50)
    await fill(store, "kept", 1)
    assert await store.close_session("big") == 1
    await store.vacuum()
    await store.vacuum(incremental=False)
    for mode in ("PASSIVE", "full", "RESTART", "TRUNCATE"):
        await store.checkpoint(mode=mode)
    await store.checkpoint()
    assert len(await store.load_all_messages("kept")) == 1


async def test_checkpoint_refuses_an_unknown_mode(store: SessionStore) -> None:
    with pytest.raises(InvalidArgumentError, match="checkpoint mode 'SOMETIMES'") as info:
        await store.checkpoint(mode="SOMETIMES")
    assert info.value.code == "invalid_argument"


async def test_backup_is_a_complete_openable_copy(store: SessionStore, backend: Backend,
                                                  tmp_path: Path) -> None:
    await fill(store, "s", 3)
    await store.enqueue_follow_up("s", "f")
    dest = tmp_path / "backup.db"
    await store.backup(dest)
    if backend.is_server:
        return  # a server backend may make backup() a no-op: nothing more to check
    async with await open_store(str(dest), schema="verify") as copy:
        assert await copy.load_all_messages("s") == await store.load_all_messages("s")
        assert [f.content for f in await copy.list_follow_ups("s")] == ["f"]


def folded_archive(sid: str, *, compacted: int, created_at: int = 1000) -> dict[str, object]:
    """An archive whose first ``compacted`` messages were folded out, then one active summary."""
    messages: list[dict[str, object]] = [
        {"session_id": sid, "seq": seq, "role": "user", "content": f"m{seq}", "meta": {},
         "state": "compacted_out" if seq <= compacted else "active", "created_at": created_at + seq}
        for seq in range(1, compacted + 2)
    ]
    messages.append({"session_id": sid, "seq": compacted + 2, "role": "user", "content": "dropped",
                     "meta": {}, "state": "dropped", "created_at": created_at})
    return {
        "schema_version": 2, "session_id": sid,
        "tables": {"sessions": [{"session_id": sid, "created_at": 1, "updated_at": 1, "config": {},
                                 "status": "active", "kind": "root", "metadata": {},
                                 "next_seq": compacted + 3}],
                   "messages": messages},
    }


async def test_prune_deletes_only_compacted_out_messages(store: SessionStore) -> None:
    await store.import_session(folded_archive("p", compacted=5))
    await store.import_session(folded_archive("other", compacted=2))
    assert await store.prune_compacted_messages("p") == 5
    remaining = await store.load_all_messages("p")
    assert [(m.seq, m.state) for m in remaining] == [(6, "active"), (7, "dropped")]
    assert await store.prune_compacted_messages("p") == 0
    assert len(await store.load_all_messages("other")) == 4
    rows = await store.append_messages("p", [NewMessage(role="user", content="x")], expected_next_seq=8)
    assert [r.seq for r in rows] == [8]


async def test_prune_keeps_the_most_recent_and_the_young(store: SessionStore) -> None:
    await store.import_session(folded_archive("p", compacted=5))
    assert await store.prune_compacted_messages("p", keep_recent=2) == 3
    assert [m.seq for m in await store.load_all_messages("p") if m.state == "compacted_out"] == [4, 5]
    assert await store.prune_compacted_messages("p", keep_recent=5) == 0
    young = int(time.time() * 1000) - 100
    await store.import_session(folded_archive("young", compacted=3, created_at=young))
    assert await store.prune_compacted_messages("young", older_than_ms=3_600_000) == 0
    assert await store.prune_compacted_messages("young", older_than_ms=0) == 3


async def test_prune_validates_its_arguments(store: SessionStore) -> None:
    await store.import_session(folded_archive("p", compacted=2))
    with pytest.raises(InvalidArgumentError) as info:
        await store.prune_compacted_messages("p", older_than_ms=-1, keep_recent=-2)
    assert "older_than_ms" in str(info.value) and "keep_recent" in str(info.value)
    with pytest.raises(SessionNotFoundError):
        await store.prune_compacted_messages("ghost")
    assert len(await store.load_all_messages("p")) == 4
