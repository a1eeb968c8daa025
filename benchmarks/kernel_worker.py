"""One benchmark variant in its own process; prints one JSON line of measurements.

Variants: ``ours`` (StatefulAgentLoop over the OpenAI-compatible transport and SQLite),
``raw`` (hand-built JSON over http.client, each message committed to SQLite by hand:
the physical floor of a durable loop) and ``sdk`` (the same with the official SDK's
typed ``chat.completions.create``). CPU is ``time.process_time()`` of this process only
(all its threads); the fake server runs in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import sqlite3
import sys
import time
from typing import Any
from urllib.parse import urlparse

from benchmarks._workload import MAX_TOKENS, MODEL, SYSTEM_PROMPT, TOOLS, lookup, tool_output, user_text

# -- raw and SDK floors ---------------------------------------------------------------------


class RawStore:
    """Each message INSERTed and committed by hand (WAL, synchronous=NORMAL)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS raw_messages (session_id TEXT, seq INTEGER, role TEXT, "
                        "content TEXT, tool_calls TEXT, tool_call_id TEXT, PRIMARY KEY (session_id, seq))")
        self.seq: dict[str, int] = {}

    def load(self, table: str, sid: str) -> list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT seq, role, content, tool_calls, tool_call_id FROM {table} "
                               "WHERE session_id = ? AND state = 'active' ORDER BY seq", (sid,)).fetchall()
        out = []
        for seq, role, content, tool_calls, tool_call_id in rows:
            msg: dict[str, Any] = {"role": role, "content": json.loads(content)}
            if tool_calls:
                msg["tool_calls"] = json.loads(tool_calls)
            if tool_call_id is not None:
                msg["tool_call_id"] = tool_call_id
            out.append(msg)
            self.seq[sid] = seq
        return out

    def commit(self, sid: str, msg: dict[str, Any]) -> None:
        seq = self.seq.get(sid, 0) + 1
        self.seq[sid] = seq
        tc = msg.get("tool_calls")
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO raw_messages VALUES (?, ?, ?, ?, ?, ?)",
                        (sid, seq, msg["role"], json.dumps(msg.get("content"), ensure_ascii=False),
                         json.dumps(tc) if tc else None, msg.get("tool_call_id")))
        self.db.execute("COMMIT")


class RawHTTP:
    def __init__(self, base_url: str) -> None:
        u = urlparse(base_url)
        self.conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80)
        self.path = u.path.rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json", "Authorization": "Bearer fake-key"}

    def complete(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        body = json.dumps({"model": MODEL, "messages": [{"role": "system", "content": SYSTEM_PROMPT}, *messages],
                           "max_tokens": MAX_TOKENS, "temperature": 0.0, "tools": TOOLS}).encode()
        self.conn.request("POST", self.path, body, self.headers)
        data = json.loads(self.conn.getresponse().read())
        msg = data["choices"][0]["message"]
        out: dict[str, Any] = {"role": "assistant", "content": msg.get("content")}
        if msg.get("tool_calls"):
            out["tool_calls"] = msg["tool_calls"]
        return out


class SDKHTTP:
    def __init__(self, base_url: str) -> None:
        import openai

        self.client = openai.OpenAI(base_url=base_url, api_key="fake-key", max_retries=0)

    def complete(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        resp = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "system", "content": SYSTEM_PROMPT}, *messages],  # type: ignore[list-item]
            max_tokens=MAX_TOKENS, temperature=0.0, tools=TOOLS)  # type: ignore[arg-type]
        msg = resp.choices[0].message
        out: dict[str, Any] = {"role": "assistant", "content": msg.content}
        if msg.tool_calls:
            out["tool_calls"] = [tc.model_dump() for tc in msg.tool_calls]
        return out


def floor_send(http: RawHTTP | SDKHTTP, store: RawStore, sid: str, history: list[dict[str, Any]], i: int) -> None:
    user = {"role": "user", "content": user_text(i)}
    history.append(user)
    store.commit(sid, user)
    while True:
        reply = http.complete(history)
        history.append(reply)
        store.commit(sid, reply)
        calls = reply.get("tool_calls")
        if not calls:
            return
        for call in calls:
            result = {"role": "tool", "tool_call_id": call["id"], "content": tool_output(call["function"]["arguments"])}
            history.append(result)
            store.commit(sid, result)


# -- ours -------------------------------------------------------------------------------------


def build_loop(url: str, db: str) -> Any:
    from power_loop import (
        AgentLoopConfig,
        LLMProviderConfig,
        StatefulAgentLoop,
        ToolDefinition,
        ToolRegistry,
        create_llm_service_from_config,
    )

    registry = ToolRegistry()
    fn = TOOLS[0]["function"]
    registry.register(ToolDefinition(name=fn["name"], description=fn["description"], input_schema=fn["parameters"]),
                      lookup)
    llm = create_llm_service_from_config(LLMProviderConfig(base_url=url, api_key="fake-key", model=MODEL,
                                                           max_tokens=MAX_TOKENS))
    config = AgentLoopConfig(system_prompt=SYSTEM_PROMPT, inject_tool_descriptions=False, max_tokens=MAX_TOKENS)
    return StatefulAgentLoop(llm=llm, dsn=db, tool_registry=registry, config=config)


async def warm_up(loop: Any) -> None:
    """One unmeasured send on a throwaway session: lazy imports, the connection, the probe."""
    sid = await loop.new_session()
    await loop.send(user_text(-1), session_id=sid)


async def ours_sequential(url: str, db: str, n: int) -> list[float]:
    loop = build_loop(url, db)
    await warm_up(loop)
    sid = await loop.new_session()
    times = []
    for i in range(n):
        t0 = time.process_time()
        await loop.send(user_text(i), session_id=sid)
        times.append(time.process_time() - t0)
    await loop.aclose()
    return times


async def ours_concurrent(url: str, db: str, sessions: int, sends: int) -> float:
    loop = build_loop(url, db)
    await warm_up(loop)
    sids = [await loop.new_session() for _ in range(sessions)]

    async def drive(sid: str) -> None:
        for i in range(sends):
            await loop.send(user_text(i), session_id=sid)

    t0 = time.process_time()
    await asyncio.gather(*(drive(s) for s in sids))
    cpu = time.process_time() - t0
    await loop.aclose()
    return cpu


def preimport() -> None:
    """Import what our code otherwise imports lazily on first use, so that S2 measures the
    cold send (history load, client set-up, the send) and not module imports — those are
    excluded from every variant and reported by the import figure."""
    import jsonschema  # noqa: F401  (first tool registration)
    import openai

    import power_loop.llm.transports.openai  # noqa: F401

    # The SDK imports its HTTP stack and resource modules lazily, on the first client:
    # build and touch a throwaway one (no request is sent).
    _ = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9").chat.completions


async def touch_lazy_modules() -> None:
    """Run the store and tool paths once on a throwaway database, so modules our code
    imports on first use (the SQLite backend, jsonschema's validators, ...) are loaded
    before the measured cold send: imports are excluded from every variant."""
    import copy
    import tempfile

    from power_loop import ToolDefinition, ToolRegistry
    from power_loop.store.dsn import open_store
    from power_loop.store.rows import NewMessage

    with tempfile.TemporaryDirectory() as d:
        store = await open_store(f"{d}/warm.db")
        sid = (await store.create_session()).session_id
        await store.append_messages(sid, [NewMessage(role="user", content="x")], expected_next_seq=1)
        await store.load_active_window(sid)
        await store.close()
    fn = copy.deepcopy(TOOLS[0]["function"])  # a copy: no compiled validator is shared with the measured loop
    registry = ToolRegistry()
    registry.register(ToolDefinition(name=fn["name"], description=fn["description"], input_schema=fn["parameters"]),
                      lookup)
    registry.validate(fn["name"], {"key": "k"})
    await registry.invoke_async(fn["name"], {"key": "k"})  # a sync handler: the worker pool


async def ours_cold(url: str, db: str, sid: str) -> dict[str, Any]:
    preimport()
    await touch_lazy_modules()

    t0 = time.process_time()
    loop = build_loop(url, db)
    await loop.send(user_text(10**6), session_id=sid)
    cpu = time.process_time() - t0
    counters = loop.store.db.counters
    result = {"cpu": cpu, "reads": counters.reads, "commits": counters.commits}
    await loop.aclose()
    return result


async def ours_sql(url: str, db: str) -> dict[str, Any]:
    loop = build_loop(url, db)
    sid = await loop.new_session()
    for i in range(3):
        await loop.send(user_text(i), session_id=sid)
    counters = loop.store.db.counters
    counters.reset()
    await loop.send(user_text(99), session_id=sid)
    warm = {"commits": counters.commits, "reads": counters.reads, "statements": counters.statements}
    await loop.aclose()
    return warm


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("variant", choices=["ours", "raw", "sdk"])
    p.add_argument("scenario", choices=["seq", "concurrent", "cold", "sql"])
    p.add_argument("--url", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--sends", type=int, default=200)
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--sid", default="")
    a = p.parse_args(argv)
    out: dict[str, Any]
    if a.variant == "ours":
        if a.scenario == "seq":
            out = {"times": asyncio.run(ours_sequential(a.url, a.db, a.sends))}
        elif a.scenario == "concurrent":
            out = {"cpu": asyncio.run(ours_concurrent(a.url, a.db, a.sessions, a.sends))}
        elif a.scenario == "cold":
            out = asyncio.run(ours_cold(a.url, a.db, a.sid))
        else:
            out = asyncio.run(ours_sql(a.url, a.db))
    else:
        if a.variant == "sdk":
            import openai  # noqa: F401
        store = RawStore(a.db)
        http: RawHTTP | SDKHTTP = SDKHTTP(a.url) if a.variant == "sdk" else RawHTTP(a.url)
        if a.scenario in ("seq", "concurrent"):
            floor_send(http, store, "warm-up", [], -1)  # the same unmeasured warm-up as ours
        if a.scenario == "seq":
            history: list[dict[str, Any]] = []
            times = []
            for i in range(a.sends):
                t0 = time.process_time()
                floor_send(http, store, "s", history, i)
                times.append(time.process_time() - t0)
            out = {"times": times}
        elif a.scenario == "concurrent":
            t0 = time.process_time()
            for s in range(a.sessions):
                hist: list[dict[str, Any]] = []
                for i in range(a.sends):
                    floor_send(http, store, f"s{s}", hist, i)
            out = {"cpu": time.process_time() - t0}
        elif a.scenario == "cold":
            t0 = time.process_time()
            cold = RawStore(a.db)
            hist = cold.load("pl_messages", a.sid)
            floor_send(RawHTTP(a.url) if a.variant == "raw" else http, cold, a.sid, hist, 10**6)
            out = {"cpu": time.process_time() - t0}
        else:
            out = {}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
