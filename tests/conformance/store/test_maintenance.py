"""vacuum, checkpoint and backup: real on SQLite, harmless no-ops where meaningless."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_targets import Backend

from power_loop.contracts.errors import InvalidArgumentError
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
