"""The agent process the demo starts (twice): it is killed once, then recovers.

``--phase first`` creates a session, sends two messages, and blocks inside a tool call
(the demo kills it there). ``--phase recover`` is a brand-new process that continues the
same session from the SQLite file alone: it shows the pending tool call, resumes it,
sends once more and prints the durable transcript.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from power_loop.contracts.errors import SessionPendingError
from power_loop.llm.config import create_llm_service_from_env
from power_loop.loop.stateful import StatefulAgentLoop
from power_loop.tools.registry import ToolRegistry


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def build_registry(*, block: bool) -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool
    def get_weather(city: str) -> dict[str, object]:
        """Current weather for a city.

        Args:
            city: City name, e.g. "Paris".
        """
        _say(f"TOOL_STARTED get_weather(city={city!r}) in pid {os.getpid()}")
        if block:
            time.sleep(600)  # the demo kills this process here
        return {"city": city, "temp_c": 21, "sky": "clear"}

    return registry


async def first(db: str, sid_file: Path) -> None:
    loop = StatefulAgentLoop(llm=create_llm_service_from_env(), dsn=db, tool_registry=build_registry(block=True))
    sid = await loop.new_session(metadata={"demo": True})
    sid_file.write_text(sid)
    _say(f"created session {sid}")
    reply = await loop.send("My favorite color is teal.", session_id=sid)
    _say(f"send 1 -> {reply.final_text!r}")
    _say("send 2: 'What is the weather in Paris?' (the model will call get_weather)")
    reply = await loop.send("What is the weather in Paris?", session_id=sid)
    _say(f"send 2 -> {reply.final_text!r} (status {reply.status}; the model did not call the tool)")
    await loop.aclose()


async def recover(db: str, sid_file: Path) -> None:
    sid = sid_file.read_text().strip()
    loop = StatefulAgentLoop(llm=create_llm_service_from_env(), dsn=db, tool_registry=build_registry(block=False))
    messages = await loop.get_messages(sid)
    _say(f"new process {os.getpid()} opened session {sid}: {len(messages)} messages survived the kill")
    pending = await loop.get_pending(sid)
    if pending:
        names = [c["function"]["name"] for c in pending["tool_calls"]]
        _say(f"unresolved tool calls from assistant message seq {pending['assistant_seq']}: {names}")
        try:
            await loop.send("Are you there?", session_id=sid)
        except SessionPendingError as exc:
            _say(f"send() refused, as it must: [{exc.code}] {str(exc)[:90]}...")
        result = await loop.resume(sid)
        _say(f"resume() ran the tool and finished: status={result.status} -> {result.final_text!r}")
    reply = await loop.send("What is my favorite color?", session_id=sid)
    _say(f"send 3 -> {reply.final_text!r}")
    stats = await loop.get_session_stats(sid)
    if stats is not None:
        _say(f"session stats: sends={stats.sends} rounds={stats.rounds} llm_calls={stats.llm_calls} "
             f"tool_calls={stats.tool_calls} total_tokens={stats.total_tokens}")
    _say("durable transcript (seq, role, content):")
    assert loop.store is not None
    for row in await loop.store.load_all_messages(sid):
        content = row.content if row.content is not None else ""
        if row.tool_calls:
            content = "calls " + ", ".join(
                f"{c['function']['name']}({c['function']['arguments']})" for c in row.tool_calls)
        flat = " ".join(str(content).split())
        _say(f"  {row.seq:>2}  {row.role:<9} {flat[:90]}")
    await loop.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--phase", choices=("first", "recover"), required=True)
    args = parser.parse_args(argv)
    sid_file = Path(args.db + ".session")
    asyncio.run(first(args.db, sid_file) if args.phase == "first" else recover(args.db, sid_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
