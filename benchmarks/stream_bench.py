"""Streaming figures of issue #4, and the Anthropic path's per-send CPU (S1/S3-like).

``python -m benchmarks stream [--answers N] [--sends N] [--sessions N] [--section stream|send|all]``

stream: the fake server (its own process) streams ~500-token answers, one ~4-character
delta per SSE event. For each wire format we measure the client's CPU per streamed token
(``time.process_time``, all threads) and the time from the server's first byte (stamped by
the server just before it writes the response, on the shared monotonic clock) to the first
delta: ``floor`` reads the SSE with ``http.client`` and one ``json.loads`` per line;
``transport`` is our ``LLMService.complete`` with a delta callback; ``loop`` is a whole
``StatefulAgentLoop.send`` with a ``stream_delta`` subscriber (two commits included).
Target: transport and loop CPU/token <= 2x the floor.

send: the kernel workload (a tool round + a final answer per send) over the Anthropic
transport vs a raw floor (hand-built Messages API JSON over ``http.client``, every message
committed to SQLite by hand). S1-like: one session, N sequential sends; S3-like: many
sessions concurrently. Target: ours <= 2x the floor per send.

Every variant runs in its own process; nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from benchmarks._workload import (
    MAX_TOKENS,
    MODEL,
    SYSTEM_PROMPT,
    TOOLS,
    client_prefix,
    lookup,
    pin_server,
    user_text,
)

WORDS = "the quick brown fox jumps over a lazy dog while rivers run to the sea "
PROMPT = (WORDS * 40)[:2000]
CHUNK_CHARS = 4
ANTHROPIC_TOOLS = [{"name": t["function"]["name"], "description": t["function"]["description"],
                    "input_schema": t["function"]["parameters"]} for t in TOOLS]


def _now() -> float:
    return time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine


# -- the instrumented fake server (its own process) -------------------------------------


def _serve(chunk_chars: int) -> int:
    from power_loop.testing.fake_server import server as fake
    from power_loop.testing.fake_server.wire import WireReply

    stamps: list[float] = []
    send = fake._Handler.send

    def stamped(self: Any, reply: Any, *, event_delay_s: float = 0.0) -> None:
        if reply.content_type.startswith("text/event-stream"):
            stamps.append(_now())
        send(self, reply, event_delay_s=event_delay_s)

    class Stamps:
        name, post_paths = "bench", frozenset[str]()

        def get(self, path: str, *, model: str) -> WireReply | None:
            return WireReply(body=json.dumps(stamps).encode()) if path == "/bench/first-bytes" else None

    fake._Handler.send = stamped  # type: ignore[method-assign]  # the benchmark stamps each first byte
    server = fake.FakeLLMServer(stream_chunk_chars=chunk_chars, max_recorded_requests=0)
    server.wires.append(Stamps())  # type: ignore[arg-type]  # a GET-only wire: no handle/error
    print(f"FAKE_LLM_URL={server.start()}", flush=True)
    threading.Event().wait() if sys.stdin is None else sys.stdin.read()  # until the parent closes stdin
    server.stop()
    return 0


def _start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.stream_bench", "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    pin_server(proc.pid)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("FAKE_LLM_URL="):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def _first_bytes(url: str) -> list[float]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80)
    conn.request("GET", "/bench/first-bytes")
    stamps: list[float] = json.loads(conn.getresponse().read())
    conn.close()
    return stamps


# -- stream workers ---------------------------------------------------------------------


def _floor_stream(url: str, provider: str, answers: int) -> tuple[float, int, list[float]]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80)
    if provider == "openai":
        path, headers = "/v1/chat/completions", {"Authorization": "Bearer fake-key"}
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": MAX_TOKENS}
    else:
        path, headers = "/v1/messages", {"x-api-key": "fake-key", "anthropic-version": "2023-06-01"}
        body = {"max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": PROMPT}], "model": MODEL,
                "stream": True}
    headers["Content-Type"] = "application/json"
    cpu, tokens, firsts = 0.0, 0, []
    for i in range(answers + 3):
        t0 = time.process_time()
        conn.request("POST", path, json.dumps(body).encode(), headers)
        response = conn.getresponse()
        first: float | None = None
        count = 0
        for line in response:
            if not line.startswith(b"data:") or line.startswith(b"data: [DONE]"):
                continue
            data = json.loads(line[5:])
            if provider == "openai":
                text = data["choices"][0]["delta"].get("content") if data.get("choices") else None
            else:
                text = data["delta"].get("text") if data.get("type") == "content_block_delta" else None
            if text:
                count += 1
                if first is None:
                    first = _now()
        response.read()  # the end of the body: the connection is reused
        if i >= 3:  # warm-up excluded
            cpu += time.process_time() - t0
            tokens += count
            firsts.append(first or 0.0)
    return cpu, tokens, firsts


def _llm(url: str, provider: str) -> Any:
    from power_loop import LLMProviderConfig, create_llm_service_from_config

    return create_llm_service_from_config(LLMProviderConfig(
        base_url=url, api_key="fake-key", model=MODEL, provider=provider, max_tokens=MAX_TOKENS))


async def _ours_stream(url: str, provider: str, answers: int, level: str) -> tuple[float, int, list[float]]:
    from power_loop import AgentEventBus, AgentEventType, AgentLoopConfig, LLMRequest, StatefulAgentLoop

    llm = _llm(url, provider)
    state = {"first": 0.0, "count": 0}

    def on_delta(_: Any) -> None:
        if not state["count"]:
            state["first"] = _now()
        state["count"] += 1

    bus = AgentEventBus()
    bus.subscribe(AgentEventType.STREAM_DELTA, on_delta)
    tmp = tempfile.mkdtemp()
    loop = StatefulAgentLoop(llm=llm, dsn=str(Path(tmp) / "stream.db"), event_bus=bus,
                             config=AgentLoopConfig(system_prompt=None, inject_tool_descriptions=False))
    request = LLMRequest(messages=[{"role": "user", "content": PROMPT}])
    cpu, tokens, firsts = 0.0, 0, []
    for i in range(answers + 3):
        state.update(first=0.0, count=0)
        sid = await loop.new_session() if level == "loop" else ""
        t0 = time.process_time()
        if level == "loop":
            await loop.send(PROMPT, sid)
        else:
            await llm.complete(request, on_chunk_delta_text=on_delta)
        if i >= 3:
            cpu += time.process_time() - t0
            tokens += int(state["count"])
            firsts.append(state["first"])
    await loop.aclose()
    await llm.close()
    return cpu, tokens, firsts


# -- send workers (Anthropic S1/S3-like) ------------------------------------------------


class _RawAnthropic:
    """The floor: Anthropic-native history, hand-built JSON over http.client."""

    def __init__(self, url: str) -> None:
        u = urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80)
        self.headers = {"Content-Type": "application/json", "x-api-key": "fake-key",
                        "anthropic-version": "2023-06-01"}

    def complete(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        body = json.dumps({"max_tokens": MAX_TOKENS, "messages": messages, "model": MODEL, "system": SYSTEM_PROMPT,
                           "tools": ANTHROPIC_TOOLS, "temperature": 0.0}).encode()
        self.conn.request("POST", "/v1/messages", body, self.headers)
        return dict(json.loads(self.conn.getresponse().read()))


def _raw_send(http_: _RawAnthropic, store: Any, sid: str, history: list[dict[str, Any]], i: int) -> None:
    user = {"role": "user", "content": user_text(i)}
    history.append(user)
    store.commit(sid, user)
    while True:
        reply = http_.complete(history)
        blocks = reply["content"]
        history.append({"role": "assistant", "content": blocks})
        store.commit(sid, {"role": "assistant", "content": blocks})
        uses = [b for b in blocks if b["type"] == "tool_use"]
        if not uses:
            return
        results = []
        for use in uses:
            output = json.dumps(lookup(**use["input"]), ensure_ascii=False)
            store.commit(sid, {"role": "tool", "tool_call_id": use["id"], "content": output})
            results.append({"type": "tool_result", "tool_use_id": use["id"], "content": output})
        history.append({"role": "user", "content": results})


def _raw_sends(url: str, db: str, sessions: int, sends: int) -> list[float]:
    from benchmarks.kernel_worker import RawStore

    http_, store = _RawAnthropic(url), RawStore(db)
    _raw_send(http_, store, "warm-up", [], -1)
    histories: dict[str, list[dict[str, Any]]] = {f"s{s}": [] for s in range(sessions)}
    times = []
    for i in range(sends):
        for sid, history in histories.items():
            t0 = time.process_time()
            _raw_send(http_, store, sid, history, i)
            times.append(time.process_time() - t0)
    return times


async def _ours_sends(url: str, db: str, sessions: int, sends: int) -> list[float]:
    from power_loop import AgentLoopConfig, StatefulAgentLoop, ToolDefinition, ToolRegistry

    registry = ToolRegistry()
    fn = TOOLS[0]["function"]
    registry.register(ToolDefinition(name=fn["name"], description=fn["description"],
                                     input_schema=fn["parameters"]), lookup)
    llm = _llm(url, "anthropic")
    loop = StatefulAgentLoop(llm=llm, dsn=db, tool_registry=registry, config=AgentLoopConfig(
        system_prompt=SYSTEM_PROMPT, inject_tool_descriptions=False, max_tokens=MAX_TOKENS))
    await loop.send(user_text(-1), await loop.new_session())  # the same unmeasured warm-up
    sids = [await loop.new_session() for _ in range(sessions)]
    times: list[float] = []
    if sessions == 1:
        for i in range(sends):
            t0 = time.process_time()
            await loop.send(user_text(i), sids[0])
            times.append(time.process_time() - t0)
    else:
        async def drive(sid: str) -> None:
            for i in range(sends):
                await loop.send(user_text(i), sid)

        t0 = time.process_time()
        await asyncio.gather(*(drive(s) for s in sids))
        times = [(time.process_time() - t0) / (sessions * sends)] * (sessions * sends)
    await loop.aclose()
    await llm.close()
    return times


def _worker(args: argparse.Namespace) -> int:
    stamps_before = len(_first_bytes(args.url))
    if args.worker.startswith("send-"):
        if args.worker == "send-raw":
            times = _raw_sends(args.url, args.db, args.sessions, args.sends)
        else:
            times = asyncio.run(_ours_sends(args.url, args.db, args.sessions, args.sends))
        print(json.dumps({"times": times}))
        return 0
    level, provider = args.worker.split("-")
    if level == "floor":
        cpu, tokens, firsts = _floor_stream(args.url, provider, args.answers)
    else:
        cpu, tokens, firsts = asyncio.run(_ours_stream(args.url, provider, args.answers, level))
    served = _first_bytes(args.url)[stamps_before:][-len(firsts):]
    latencies = [f - s for f, s in zip(firsts, served, strict=True)]
    print(json.dumps({"cpu": cpu, "tokens": tokens, "latencies": latencies}))
    return 0


# -- the tables -------------------------------------------------------------------------


def _run(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([*client_prefix(), "benchmarks.stream_bench", "--worker", *args], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{out.stdout}\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  " + "-+-".join("-" * w for w in widths))
    for r in rows:
        print("  " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def _stream_section(url: str, answers: int, repeat: int) -> None:
    variants = [(p, level) for p in ("openai", "anthropic") for level in ("floor", "transport", "loop")]
    cpu: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    latencies: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    deltas: dict[tuple[str, str], int] = {}
    for _ in range(repeat):  # interleaved, so background load hits every variant alike
        for provider, level in variants:
            r = _run([f"{level}-{provider}", "--url", url, "--answers", str(answers)])
            cpu[provider, level].append(r["cpu"] / max(1, r["tokens"]) * 1e6)
            latencies[provider, level].extend(r["latencies"])
            deltas[provider, level] = r["tokens"] // answers
    rows = []
    for provider, level in variants:
        best, floor = min(cpu[provider, level]), min(cpu[provider, "floor"])
        rows.append([provider, level, str(deltas[provider, level]), f"{best:7.2f}",
                     f"{statistics.median(cpu[provider, level]):7.2f}", f"{best / floor:5.2f}x",
                     f"{statistics.median(latencies[provider, level]) * 1000:7.3f}"])
    _table(f"Streaming: {repeat} x {answers} answers of ~{len(PROMPT) // CHUNK_CHARS} deltas each; client CPU only",
           ["wire", "variant", "deltas/answer", "CPU us/token (best)", "(median)", "best vs floor",
            "first byte -> first delta ms (median)"], rows)
    print("  target: transport and loop CPU/token <= 2x floor")


def _send_section(url: str, tmp: Path, sends: int, sessions: int, repeat: int) -> None:
    rows = []
    for label, n_sessions, n_sends in (("S1-like", 1, sends), ("S3-like", sessions, 5)):
        results: dict[str, list[list[float]]] = {"raw": [], "ours": []}
        for attempt in range(repeat):
            for v in results:
                db = str(tmp / f"{label}-{v}-{attempt}.db")
                results[v].append(_run([f"send-{v}", "--url", url, "--db", db, "--sessions", str(n_sessions),
                                        "--sends", str(n_sends)])["times"])
        best = {v: min(runs, key=statistics.mean) for v, runs in results.items()}
        raw_mean = statistics.mean(best["raw"])
        for variant, times in best.items():
            first, last = statistics.mean(times[:20]), statistics.mean(times[-20:])
            rows.append([label, variant, f"{n_sessions}x{n_sends}", f"{statistics.mean(times) * 1000:7.3f}",
                         f"{(last - first) * 1000:7.3f}", f"{statistics.mean(times) / raw_mean:5.2f}x"])
    _table(f"Anthropic transport, kernel workload (tool round + final answer per send); client CPU ms per send"
           f" (best of {repeat})", ["scenario", "variant", "sessions x sends", "mean", "growth (last20-first20)",
                                   "vs raw"], rows)
    print("  target: ours <= 2x raw per send")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks stream")
    p.add_argument("--answers", type=int, default=30, help="streamed answers per variant")
    p.add_argument("--sends", type=int, default=200, help="sequential sends of the S1-like run")
    p.add_argument("--sessions", type=int, default=40, help="concurrent sessions of the S3-like run")
    p.add_argument("--section", choices=["stream", "send", "all"], default="all")
    p.add_argument("--repeat", type=int, default=3, help="runs per variant, interleaved (best and median shown)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--url", default="", help=argparse.SUPPRESS)
    p.add_argument("--db", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        return _serve(CHUNK_CHARS)
    if args.worker:
        return _worker(args)
    proc, url = _start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.section in ("stream", "all"):
                _stream_section(url, args.answers, args.repeat)
            if args.section in ("send", "all"):
                _send_section(url, Path(tmp), args.sends, args.sessions, args.repeat)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
