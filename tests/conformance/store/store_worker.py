"""A child process for the multi-process store tests (run as a script, not collected).

Usage: ``python store_worker.py boot DSN PREFIX`` or ``python store_worker.py append DSN
PREFIX SESSION_ID TAG COUNT``. The child prints ``ready`` once imported, waits for a line
on stdin (so every child starts its race at the same moment), does its work, prints one
JSON line with the outcome and exits 0 (1 with the error on stderr).
"""

from __future__ import annotations

import asyncio
import json
import sys

from power_loop.store.dsn import open_store
from power_loop.store.port import WriteConflict
from power_loop.store.rows import NewMessage


async def boot(dsn: str, prefix: str) -> dict[str, object]:
    async with await open_store(dsn, table_prefix=prefix) as store:
        return {"schema_version": store.schema_version}


async def append(dsn: str, prefix: str, sid: str, tag: str, count: int) -> dict[str, object]:
    """Append ``count`` messages with optimistic retries; report how many conflicts it met."""
    conflicts = 0
    async with await open_store(dsn, table_prefix=prefix) as store:
        sys.stdout.write("connected\n")
        sys.stdout.flush()
        for i in range(count):
            while True:
                session = await store.get_session(sid)
                assert session is not None
                try:
                    await store.append_messages(sid, [NewMessage(role="user", content=f"{tag}:{i}")],
                                                expected_next_seq=session.next_seq)
                    break
                except WriteConflict:
                    conflicts += 1
    return {"conflicts": conflicts}


def main(argv: list[str]) -> int:
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    command, dsn, prefix, *rest = argv
    if command == "boot":
        result = asyncio.run(boot(dsn, prefix))
    else:
        sid, tag, count = rest
        result = asyncio.run(append(dsn, prefix, sid, tag, int(count)))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
