"""4 processes × 25 sends through StatefulAgentLoop to ONE session, on every backend.

Each send is a full tool round (user → assistant tool call → tool result → answer). The
session lease serialises sends across processes, so the log must be 100 blocks of
exactly those four messages, each block belonging to one send, with contiguous seqs.

This file is also the child: ``python test_multiprocess_loop.py DSN PREFIX SID TAG SENDS``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from power_loop import LLMRequest, LLMResponse, StatefulAgentLoop, ToolRegistry
from power_loop.llm.contract import tool_call

PROCESSES = 4
SENDS = 25
SERVER_ENV = {"postgres": "POWER_LOOP_TEST_PG_DSN", "mysql": "POWER_LOOP_TEST_MYSQL_DSN"}
pytestmark = pytest.mark.slow


class RoundTripLLM:
    """Calls ``echo`` with the user's text, then answers with the tool's result."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.calls = 0

    async def complete(self, request: LLMRequest, **_: Any) -> LLMResponse:
        self.calls += 1
        last = request.messages[-1]
        if last["role"] == "user":
            await asyncio.sleep(0.002)  # a little latency, so sends of different processes overlap
            call = tool_call(f"{self.tag}-c{self.calls}", "echo", {"text": last["content"]})
            return LLMResponse(raw_text="", tool_calls=[call])
        return LLMResponse(raw_text=f"done {last['content']}", content_text=f"done {last['content']}")

    def stream(self, request: LLMRequest) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        return None


async def child(dsn: str, prefix: str, sid: str, tag: str, sends: int) -> dict[str, Any]:
    registry = ToolRegistry()

    @registry.tool
    async def echo(text: str) -> str:
        """Echo the text.

        Args:
            text: What to echo.
        """
        await asyncio.sleep(0.001)
        return text

    statuses = []
    async with StatefulAgentLoop(llm=RoundTripLLM(tag), dsn=dsn, table_prefix=prefix,
                                 tool_registry=registry) as loop:
        for i in range(sends):
            result = await loop.send(f"{tag}:{i}", session_id=sid)
            statuses.append(result.status)
    return {"statuses": sorted(set(statuses))}


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
async def test_four_processes_of_loops_serialise_sends_on_one_session(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        dsn = str(tmp_path / "loops.db")
    else:
        dsn = os.environ.get(SERVER_ENV[backend], "")
        if not dsn:
            pytest.skip(f"{backend}: set {SERVER_ENV[backend]} to run against a server")
    prefix = f"m{uuid.uuid4().hex[:10]}_"
    from power_loop.store.dsn import open_store

    try:
        async with await open_store(dsn, table_prefix=prefix) as store:
            sid = (await store.create_session()).session_id
        tags = [f"p{n}" for n in range(PROCESSES)]
        outcomes = await run_children(dsn, prefix, sid, tags)
        assert all(o["statuses"] == ["completed"] for o in outcomes), outcomes
        async with await open_store(dsn, table_prefix=prefix) as store:
            rows = await store.load_all_messages(sid)
            stats = await store.get_session_stats(sid)
        total = PROCESSES * SENDS
        assert [r.seq for r in rows] == list(range(1, 4 * total + 1))
        for k in range(total):
            user, call, result, answer = rows[4 * k: 4 * k + 4]
            assert (user.role, call.role, result.role, answer.role) == ("user", "assistant", "tool", "assistant")
            assert call.tool_calls is not None and len(call.tool_calls) == 1
            assert json.loads(call.tool_calls[0]["function"]["arguments"]) == {"text": user.content}
            assert result.tool_call_id == call.tool_calls[0]["id"] and result.content == user.content
            assert answer.content == f"done {user.content}"
            assert user.send_index == call.send_index == result.send_index == answer.send_index == k + 1
        assert sorted(r.content for r in rows[0::4]) == sorted(f"{t}:{i}" for t in tags for i in range(SENDS))
        assert stats is not None and (stats.sends, stats.tool_calls) == (total, total)
    finally:
        if backend != "sqlite":
            from test_multiprocess_lease_store import drop_prefix

            await drop_prefix(dsn, prefix)


async def run_children(dsn: str, prefix: str, sid: str, tags: list[str]) -> list[dict[str, Any]]:
    children = [
        await asyncio.create_subprocess_exec(sys.executable, __file__, dsn, prefix, sid, tag, str(SENDS),
                                             stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
        for tag in tags
    ]
    try:
        for proc in children:
            assert proc.stdout is not None
            assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"ready\n"
        for proc in children:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outcomes = []
        for proc in children:
            out, err = await asyncio.wait_for(proc.communicate(), 240)
            assert proc.returncode == 0, err.decode()[-3000:]
            outcomes.append(json.loads(out.decode().splitlines()[-1]))
        return outcomes
    finally:
        for proc in children:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def _main(argv: list[str]) -> None:
    dsn, prefix, sid, tag, sends = argv
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(asyncio.run(child(dsn, prefix, sid, tag, int(sends)))), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
