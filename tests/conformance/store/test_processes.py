"""Several processes on one database: first boot races, sequence allocation."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from store_targets import Backend

from power_loop.store.dsn import open_store
from power_loop.store.schema import SCHEMA_VERSION

WORKER = str(Path(__file__).with_name("store_worker.py"))
PROCESSES = 4


async def race(*argvs: list[str]) -> list[dict[str, object]]:
    """Start one worker per argv, release them together, return each one's JSON outcome."""
    children = [
        await asyncio.create_subprocess_exec(sys.executable, WORKER, *argv, stdin=asyncio.subprocess.PIPE,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for argv in argvs
    ]
    try:
        return await _drive(children)
    finally:
        for child in children:  # a failed run leaves no orphan process behind
            if child.returncode is None:
                child.kill()
                await child.wait()


async def _drive(children: list[asyncio.subprocess.Process]) -> list[dict[str, object]]:
    for child in children:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 60) == b"ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    outcomes = []
    for child in children:
        out, err = await asyncio.wait_for(child.communicate(), 120)
        assert child.returncode == 0, err.decode()
        outcomes.append(json.loads(out.decode().splitlines()[-1]))
    return outcomes


def needs_processes(backend: Backend) -> None:
    if not backend.shares_database:
        pytest.skip("an in-memory database is private to its process")


async def test_concurrent_first_boot_of_several_processes_makes_one_schema(backend: Backend) -> None:
    needs_processes(backend)
    dsn, prefix = backend.dsn(), backend.prefix()
    outcomes = await race(*(["boot", dsn, prefix] for _ in range(PROCESSES)))
    assert outcomes == [{"schema_version": SCHEMA_VERSION}] * PROCESSES
    async with await open_store(dsn, table_prefix=prefix, schema="verify") as store:
        sid = (await store.create_session()).session_id
        assert await store.get_session(sid) is not None


async def test_sequence_allocation_is_contiguous_across_processes(backend: Backend) -> None:
    needs_processes(backend)
    dsn, prefix = backend.dsn(), backend.prefix()
    per_process = 15
    async with await open_store(dsn, table_prefix=prefix) as store:
        sid = (await store.create_session()).session_id
    tags = [f"p{i}" for i in range(PROCESSES)]
    outcomes = await race(*(["append", dsn, prefix, sid, tag, str(per_process)] for tag in tags))
    assert all(isinstance(o["conflicts"], int) for o in outcomes)  # retried races, never errors
    async with await open_store(dsn, table_prefix=prefix) as store:
        rows = await store.load_all_messages(sid)
        session = await store.get_session(sid)
    total = PROCESSES * per_process
    assert [r.seq for r in rows] == list(range(1, total + 1))
    assert session is not None and session.next_seq == total + 1
    assert sorted(r.content for r in rows) == sorted(f"{t}:{i}" for t in tags for i in range(per_process))
    for tag in tags:  # each process's own appends keep their order
        mine = [r.content for r in rows if r.content.startswith(f"{tag}:")]
        assert mine == [f"{tag}:{i}" for i in range(per_process)]
