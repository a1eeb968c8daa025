"""4 processes × 25 sends on one session, serialised by the store lease, on every backend.

Each "send" is what the loop does at the store level: acquire the session lease, append
the user message (starting the send), append the assistant reply, release. With the
lease, no append ever meets a stale ``next_seq``, and the log is 100 user messages each
immediately followed by its own reply, with contiguous seqs.

This file is also the child process: ``python test_multiprocess_lease_store.py DSN
PREFIX SESSION_ID TAG SENDS`` (it prints ``ready``, waits for a line on stdin, works,
then prints one JSON line).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from power_loop.store.dsn import open_store
from power_loop.store.leases import default_lease_holder
from power_loop.store.port import Stmt, WriteConflict
from power_loop.store.rows import NewMessage

PROCESSES = 4
SENDS = 25
SERVER_ENV = {"postgres": "POWER_LOOP_TEST_PG_DSN", "mysql": "POWER_LOOP_TEST_MYSQL_DSN"}
pytestmark = pytest.mark.slow


async def child(dsn: str, prefix: str, sid: str, tag: str, sends: int) -> dict[str, int]:
    holder = default_lease_holder()
    conflicts = 0
    async with await open_store(dsn, table_prefix=prefix) as store:
        for i in range(sends):
            lease = await store.acquire_lease(sid, holder=holder, ttl_ms=30_000, wait_s=60)
            try:
                session = await store.get_session(sid)
                assert session is not None
                seq = session.next_seq
                try:
                    await store.append_messages(sid, [NewMessage(role="user", content=f"{tag}:{i}")],
                                                expected_next_seq=seq, start_send=True, lease=lease)
                    await asyncio.sleep(0)  # let anything else in this process run between the two writes
                    await store.append_messages(sid, [NewMessage(role="assistant", content=f"re {tag}:{i}")],
                                                expected_next_seq=seq + 1, lease=lease)
                except WriteConflict:
                    conflicts += 1
                    raise
            finally:
                await store.release_lease(lease)
    return {"conflicts": conflicts}


def backends(tmp_path: Path) -> list[tuple[str, str]]:
    targets = [("sqlite", str(tmp_path / "leases.db"))]
    targets += [(name, os.environ[env]) for name, env in SERVER_ENV.items() if os.environ.get(env)]
    return targets


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
async def test_four_processes_send_to_one_session_without_interleaving(backend: str, tmp_path: Path) -> None:
    targets = dict(backends(tmp_path))
    if backend not in targets:
        pytest.skip(f"{backend}: set {SERVER_ENV[backend]} to run against a server")
    dsn = targets[backend]
    prefix = f"t{uuid.uuid4().hex[:10]}_" if backend != "sqlite" else "pl_"
    try:
        async with await open_store(dsn, table_prefix=prefix) as store:
            sid = (await store.create_session()).session_id
        tags = [f"p{n}" for n in range(PROCESSES)]
        outcomes = await run_children(dsn, prefix, sid, tags)
        assert outcomes == [{"conflicts": 0}] * PROCESSES
        async with await open_store(dsn, table_prefix=prefix) as store:
            rows = await store.load_all_messages(sid)
            session = await store.get_session(sid)
        total = PROCESSES * SENDS
        assert [r.seq for r in rows] == list(range(1, 2 * total + 1))
        assert session is not None and (session.next_seq, session.send_count) == (2 * total + 1, total)
        users, replies = rows[0::2], rows[1::2]
        assert all(r.role == "user" for r in users) and all(r.role == "assistant" for r in replies)
        for question, answer in zip(users, replies, strict=True):
            assert answer.content == f"re {question.content}"
        assert sorted(r.content for r in users) == sorted(f"{t}:{i}" for t in tags for i in range(SENDS))
    finally:
        if backend != "sqlite":
            await drop_prefix(dsn, prefix)


async def run_children(dsn: str, prefix: str, sid: str, tags: list[str]) -> list[dict[str, int]]:
    children = [
        await asyncio.create_subprocess_exec(sys.executable, __file__, dsn, prefix, sid, tag, str(SENDS),
                                             stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
        for tag in tags
    ]
    try:
        return await _drive(children)
    finally:
        for proc in children:  # a failed run leaves no orphan process behind
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _drive(children: list[asyncio.subprocess.Process]) -> list[dict[str, int]]:
    for proc in children:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"ready\n"
    for proc in children:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    outcomes = []
    for proc in children:
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        assert proc.returncode == 0, err.decode()
        outcomes.append(json.loads(out.decode().splitlines()[-1]))
    return outcomes


async def drop_prefix(dsn: str, prefix: str) -> None:
    """Drop every table under ``prefix`` (found in the server's catalog)."""
    from power_loop.store.dsn import parse_dsn

    parsed = parse_dsn(dsn)
    module = __import__(f"power_loop.store.backends.{parsed.backend}", fromlist=["connect"])
    db = await module.connect(parsed)
    try:
        catalog = ("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                   if parsed.backend == "postgres"
                   else "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        for (name,) in await db.fetchall(catalog):
            if str(name).startswith(prefix):
                await db.write([Stmt(f"DROP TABLE IF EXISTS {name}")])
    finally:
        await db.close()


def main(argv: list[str]) -> int:
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    dsn, prefix, sid, tag, sends = argv
    result = asyncio.run(child(dsn, prefix, sid, tag, int(sends)))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
