"""Store figures per backend: append throughput, a cold first send, contended sends across processes.

Run ``python -m benchmarks store`` (or ``python benchmarks/store_bench.py``). SQLite
always runs (a WAL file in a temporary directory); PostgreSQL and MySQL/MariaDB run
when ``--pg``/``--mysql`` or ``POWER_LOOP_TEST_PG_DSN``/``POWER_LOOP_TEST_MYSQL_DSN``
name a server (each run uses its own table prefix and drops it afterwards). Prints a
table; asserts nothing about timings.

Rows:

* appends/s, 1 session — sequential one-message appends to one session.
* appends/s, 50 sessions — 50 concurrent tasks, each appending to its own session.
* cold first send, 1000-send session — in a fresh process: ``get_session`` +
  ``load_active_messages`` (2000 messages) + one append; the open (pool, schema check)
  is reported apart.
* sends/s, 4 processes × 1 session — each send: acquire the lease, append the user
  message, append the reply, release (the loop's store traffic for a one-round send).
* sends/s, 4 processes × 4 sessions — the same, each process on its own session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from typing import Any

from power_loop.store.dsn import open_store, parse_dsn
from power_loop.store.leases import default_lease_holder
from power_loop.store.port import Stmt
from power_loop.store.rows import NewMessage
from power_loop.store.session_store import SessionStore

PROCESSES = 4


async def appends_one_session(dsn: str, prefix: str, n: int) -> float:
    async with await open_store(dsn, table_prefix=prefix) as store:
        sid = (await store.create_session()).session_id
        started = time.perf_counter()
        for seq in range(1, n + 1):
            await store.append_messages(sid, [NewMessage(role="user", content=f"m{seq}")],
                                        expected_next_seq=seq)
        return n / (time.perf_counter() - started)


async def appends_many_sessions(dsn: str, prefix: str, sessions: int, per_session: int) -> float:
    async with await open_store(dsn, table_prefix=prefix) as store:
        sids = [(await store.create_session()).session_id for _ in range(sessions)]

        async def writer(sid: str) -> None:
            for seq in range(1, per_session + 1):
                await store.append_messages(sid, [NewMessage(role="user", content=f"m{seq}")],
                                            expected_next_seq=seq)

        started = time.perf_counter()
        await asyncio.gather(*(writer(s) for s in sids))
        return sessions * per_session / (time.perf_counter() - started)


async def build_long_session(store: SessionStore, sends: int) -> str:
    """A session of ``sends`` user/assistant pairs, appended 100 sends per batch."""
    sid = (await store.create_session()).session_id
    seq = 1
    for start in range(0, sends, 100):
        batch = []
        for i in range(start, min(sends, start + 100)):
            batch += [NewMessage(role="user", content=f"question {i} " + "x" * 200, send_index=i + 1),
                      NewMessage(role="assistant", content=f"answer {i} " + "y" * 400, send_index=i + 1)]
        await store.append_messages(sid, batch, expected_next_seq=seq)
        seq += len(batch)
    return sid


def wait_for_go() -> None:
    """Tell the parent this child is ready, then block until it says go (a fair start)."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()


async def cold_child(dsn: str, prefix: str, sid: str) -> dict[str, float]:
    wait_for_go()
    started = time.perf_counter()
    store = await open_store(dsn, table_prefix=prefix)
    opened = time.perf_counter()
    try:
        session = await store.get_session(sid)
        assert session is not None
        window = await store.load_active_messages(sid)
        await store.append_messages(sid, [NewMessage(role="user", content="next")],
                                    expected_next_seq=session.next_seq)
        done = time.perf_counter()
    finally:
        await store.close()
    return {"open_ms": (opened - started) * 1000, "first_send_ms": (done - opened) * 1000,
            "window": float(len(window))}


async def send_child(dsn: str, prefix: str, sid: str, sends: int) -> dict[str, float]:
    holder = default_lease_holder()
    async with await open_store(dsn, table_prefix=prefix) as store:
        wait_for_go()  # connected and provisioned: only the sends are timed
        started = time.time()
        for i in range(sends):
            lease = await store.acquire_lease(sid, holder=holder, ttl_ms=30_000, wait_s=120)
            try:
                session = await store.get_session(sid)
                assert session is not None
                await store.append_messages(sid, [NewMessage(role="user", content=f"q{i}")],
                                            expected_next_seq=session.next_seq, start_send=True, lease=lease)
                await store.append_messages(sid, [NewMessage(role="assistant", content=f"a{i}")],
                                            expected_next_seq=session.next_seq + 1, lease=lease)
            finally:
                await store.release_lease(lease)
        finished = time.time()
    return {"started": started, "finished": finished}


async def spawn(*argvs: list[str]) -> tuple[list[dict[str, float]], float]:
    """Run one worker per argv, started together; return their outcomes and the wall time."""
    script = __file__
    procs = [await asyncio.create_subprocess_exec(sys.executable, script, "--worker", *argv,
                                                  stdin=asyncio.subprocess.PIPE,
                                                  stdout=asyncio.subprocess.PIPE)
             for argv in argvs]
    for proc in procs:
        assert proc.stdout is not None
        await proc.stdout.readline()  # "ready": imported and waiting
    started = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    outcomes = []
    for proc in procs:
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark worker failed (exit {proc.returncode})")
        outcomes.append(json.loads(out.decode().splitlines()[-1]))
    return outcomes, time.perf_counter() - started


async def contended(dsn: str, prefix: str, sends: int, *, shared: bool) -> float:
    async with await open_store(dsn, table_prefix=prefix) as store:
        sids = [(await store.create_session()).session_id for _ in range(1 if shared else PROCESSES)]
    argvs = [["send", dsn, prefix, sids[0 if shared else i], str(sends)] for i in range(PROCESSES)]
    outcomes, _ = await spawn(*argvs)
    elapsed = max(o["finished"] for o in outcomes) - min(o["started"] for o in outcomes)
    return PROCESSES * sends / elapsed


async def bench_backend(dsn: str, prefix: str, quick: bool) -> dict[str, str]:
    n = 200 if quick else 1000
    row: dict[str, str] = {}
    row["appends/s, 1 session"] = f"{await appends_one_session(dsn, prefix, n):,.0f}"
    row["appends/s, 50 sessions"] = f"{await appends_many_sessions(dsn, prefix, 50, 4 if quick else 20):,.0f}"
    async with await open_store(dsn, table_prefix=prefix) as store:
        sid = await build_long_session(store, 1000)
    (cold,), _ = await spawn(["cold", dsn, prefix, sid])
    row["cold open (pool + schema check), ms"] = f"{cold['open_ms']:.1f}"
    row["cold first send on 1000-send session, ms"] = f"{cold['first_send_ms']:.1f}"
    sends = 10 if quick else 25
    row["sends/s, 4 procs x 1 session (lease)"] = f"{await contended(dsn, prefix, sends, shared=True):,.0f}"
    row["sends/s, 4 procs x 4 sessions (lease)"] = f"{await contended(dsn, prefix, sends, shared=False):,.0f}"
    return row


async def drop_prefix(dsn: str, prefix: str) -> None:
    parsed = parse_dsn(dsn)
    if parsed.backend == "sqlite":
        return
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


def print_table(results: dict[str, dict[str, str]]) -> None:
    names = list(results)
    metrics = list(next(iter(results.values())))
    width = max(len(m) for m in metrics)
    cols = [max(len(n), *(len(results[n][m]) for m in metrics)) for n in names]
    print(f"{'':<{width}}  " + "  ".join(f"{n:>{c}}" for n, c in zip(names, cols, strict=True)))
    for metric in metrics:
        print(f"{metric:<{width}}  " + "  ".join(f"{results[n][metric]:>{c}}"
                                                  for n, c in zip(names, cols, strict=True)))


async def run(args: argparse.Namespace) -> int:
    targets: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        targets["sqlite"] = os.path.join(tmp, "bench.db")
        for name, dsn in (("postgres", args.pg or os.environ.get("POWER_LOOP_TEST_PG_DSN")),
                          ("mysql", args.mysql or os.environ.get("POWER_LOOP_TEST_MYSQL_DSN"))):
            if dsn:
                targets[name] = dsn
        results: dict[str, dict[str, str]] = {}
        for name, dsn in targets.items():
            prefix = f"bench{uuid.uuid4().hex[:8]}_"
            try:
                results[name] = await bench_backend(dsn, prefix, args.quick)
            finally:
                await drop_prefix(dsn, prefix)
        print_table(results)
    return 0


async def worker(argv: list[str]) -> dict[str, Any]:
    kind, dsn, prefix, sid, *rest = argv
    if kind == "cold":
        return await cold_child(dsn, prefix, sid)
    return await send_child(dsn, prefix, sid, int(rest[0]))


def main(argv: list[str]) -> int:
    """Entry point of ``python -m benchmarks store``: print the table, return the exit status."""
    if argv[:1] == ["--worker"]:
        sys.stdout.write(json.dumps(asyncio.run(worker(argv[1:]))) + "\n")
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks store", description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="PostgreSQL DSN (default $POWER_LOOP_TEST_PG_DSN)")
    parser.add_argument("--mysql", help="MySQL/MariaDB DSN (default $POWER_LOOP_TEST_MYSQL_DSN)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
