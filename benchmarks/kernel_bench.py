"""Kernel figures of issue #2: S1 (long session), S2 (cold resume), S3 (concurrency),
SQL per send, and import cost — ours against a raw floor and the SDK floor.

Every variant runs in its own process against one fake server in another process, and
only the client's CPU is measured (``time.process_time``, all threads). Module imports
are excluded from every variant's timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._workload import run_worker, start_server, tool_output, user_text


def _ms(x: float) -> str:
    return f"{x * 1000:8.2f}"


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  " + "-+-".join("-" * w for w in widths))
    for r in rows:
        print("  " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def s1(url: str, tmp: Path, sends: int) -> None:
    results: dict[str, list[float]] = {}
    for variant in ("raw", "ours", "sdk"):
        results[variant] = run_worker([variant, "seq", "--url", url, "--db", str(tmp / f"s1-{variant}.db"),
                                       "--sends", str(sends)])["times"]
    raw = results["raw"]
    rows = []
    for variant, times in results.items():
        first, last = statistics.mean(times[:20]), statistics.mean(times[-20:])
        mean = statistics.mean(times)
        rows.append([variant, _ms(mean), _ms(first), _ms(last), _ms(last - first),
                     f"{mean / statistics.mean(raw):6.2f}x",
                     f"{(last - first) / max(1e-9, statistics.mean(raw[-20:]) - statistics.mean(raw[:20])):6.2f}x"])
    _table(f"S1: one session, {sends} sends of (tool round + final answer); CPU ms per send (client only)",
           ["variant", "mean", "first 20", "last 20", "growth", "mean vs raw", "growth vs raw"], rows)
    print("  targets: ours mean <= 2x raw; ours growth <= raw growth (<= 1x)")


async def _prepare(db: str, prior: int) -> str:
    from power_loop.store.dsn import open_store
    from power_loop.store.rows import NewMessage

    store = await open_store(db)
    row = await store.create_session()
    sid, seq = row.session_id, row.next_seq
    for i in range(prior):
        call_id = f"call_{i}"
        args = json.dumps({"key": f"k{i}"})
        msgs = [
            {"role": "user", "content": user_text(i)},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": args}}]},
            {"role": "tool", "tool_call_id": call_id, "content": tool_output(args)},
            {"role": "assistant", "content": f"Here is what the tools returned:\n- lookup: {tool_output(args)}"},
        ]
        rows = await store.append_messages(
            sid, [NewMessage.from_message(m, round_index=None if m["role"] == "user" else 1, send_index=i + 1)
                  for m in msgs], expected_next_seq=seq, start_send=True)
        seq = rows[-1].seq + 1
    await store.checkpoint()
    await store.close()
    return sid


def s2(url: str, tmp: Path, sizes: list[int], repeat: int) -> None:
    rows = []
    ours10 = raw10 = None
    for prior in sizes:
        base = str(tmp / f"s2-{prior}.db")
        sid = asyncio.run(_prepare(base, prior))
        cpu: dict[str, list[float]] = {"raw": [], "ours": []}
        reads = commits = 0
        for r in range(repeat):
            for variant in ("raw", "ours"):
                db = str(tmp / f"s2-{prior}-{variant}-{r}.db")
                shutil.copy(base, db)
                res = run_worker([variant, "cold", "--url", url, "--db", db, "--sid", sid])
                cpu[variant].append(res["cpu"])
                if variant == "ours":
                    reads, commits = res["reads"], res["commits"]
        raw_m, ours_m = statistics.median(cpu["raw"]), statistics.median(cpu["ours"])
        if prior == sizes[0]:
            ours10, raw10 = ours_m, raw_m
        extra = 4 * (prior - sizes[0])  # messages beyond the smallest session's
        per_msg = (f"{(raw_m - (raw10 or 0)) / extra * 1e6:5.2f} / {(ours_m - (ours10 or 0)) / extra * 1e6:5.2f}"
                   if extra else "-")
        rows.append([str(prior), _ms(raw_m), _ms(ours_m), f"{ours_m / raw_m:6.2f}x",
                     f"{ours_m / (ours10 or ours_m):6.2f}x", per_msg, f"{reads} reads, {commits} commits"])
    _table(f"S2: cold resume, a new process's first send (median of {repeat}); CPU ms",
           ["prior sends", "raw", "ours", "ours vs raw", f"ours vs ours@{sizes[0]}",
            "us per extra message raw / ours", "ours SQL"], rows)
    print(f"  targets at {sizes[-1]}: ours <= 3x raw and <= 2x ours@{sizes[0]}")


def s3(url: str, tmp: Path, sessions: int, sends: int, repeat: int = 9) -> None:
    per: dict[str, list[float]] = {"raw": [], "ours": []}
    for r in range(repeat):  # interleaved, so machine noise hits both variants alike
        for variant in ("raw", "ours"):
            res = run_worker([variant, "concurrent", "--url", url, "--db", str(tmp / f"s3-{variant}-{r}.db"),
                              "--sessions", str(sessions), "--sends", str(sends)])
            per[variant].append(res["cpu"] / (sessions * sends))
    raw = statistics.median(per["raw"])
    rows = [[variant, _ms(statistics.median(v)), _ms(min(v)), f"{statistics.median(v) / raw:6.2f}x"]
            for variant, v in per.items()]
    _table(f"S3: {sessions} sessions x {sends} sends (concurrently for ours; raw sequential); CPU ms per send,"
           f" {repeat} interleaved runs", ["variant", "median", "best", "median vs raw"], rows)
    print("  target: ours <= 2x raw")


def sql(url: str, tmp: Path) -> None:
    warm = run_worker(["ours", "sql", "--url", url, "--db", str(tmp / "sql.db")])
    _table("SQL per warm send (a tool round: 4 messages)", ["commits", "reads", "statements"],
           [[str(warm["commits"]), str(warm["reads"]), str(warm["statements"])]])
    print("  target: commits <= 4 (one per message), no history read (the one read is the session row)")


_TYPICAL_PROGRAM = (
    "from power_loop import StatefulAgentLoop, AgentLoopConfig, ToolRegistry, ToolDefinition, AgentHooks,"
    " HookPoint, AgentEventBus, AgentEventType, create_llm_service_from_env"
)
"""What an application imports: the names it builds a loop from (so a lazy name cannot hide cost)."""


def _import_samples(statement: str, repeat: int, env: dict[str, str] | None) -> tuple[list[float], bool]:
    code = ("import time,sys; t=time.process_time(); " + statement + "; d=time.process_time()-t; "
            "print(d, int(any(m in sys.modules for m in "
            "('openai','anthropic','httpx','httpx2','asyncpg','aiomysql'))))")
    samples = []
    sdk = 0
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=env).stdout.split()
        samples.append(float(out[0]))
        sdk |= int(out[1])
    return samples, bool(sdk)


def import_cost(repeat: int) -> None:
    """CPU time of the import in a fresh interpreter, twice: in this environment and with cached bytecode.

    With ``PYTHONDONTWRITEBYTECODE`` set and no ``__pycache__`` yet (as in the dev container), every
    run compiles power_loop from source, which an installed package (``.pyc`` written at install)
    never does; the second pair of rows caches bytecode in a temporary ``PYTHONPYCACHEPREFIX``.
    """
    programs = (("import power_loop", "import power_loop"), ("typical program", _TYPICAL_PROGRAM))
    no_pyc = bool(os.environ.get("PYTHONDONTWRITEBYTECODE")) or sys.dont_write_bytecode
    here = "from source" if no_pyc else "this environment"
    rows = []
    with tempfile.TemporaryDirectory(prefix="pl-pyc-") as prefix:
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = prefix
        subprocess.run([sys.executable, "-c", _TYPICAL_PROGRAM], env=cached, check=True)  # writes the .pyc
        for bytecode, env in ((here, None), ("cached .pyc", cached)):
            for label, statement in programs:
                samples, sdk = _import_samples(statement, repeat, env)
                rows.append([label, bytecode, _ms(min(samples)), _ms(statistics.median(samples)),
                             "yes" if sdk else "no"])
    _table(f"import cost (CPU, fresh interpreter, {repeat} runs each)",
           ["program", "bytecode", "best ms", "median ms", "SDK/driver imported"], rows)
    print(f"  typical program: {_TYPICAL_PROGRAM}")
    print("  target: <= 150 ms, no SDK until a transport is built")


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "all"
    sends = int(argv[1]) if len(argv) > 1 else 200
    if what == "import":
        import_cost(7)
        return 0
    server, url = start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="pl-bench-") as d:
            tmp = Path(d)
            if what in ("s1", "all"):
                s1(url, tmp, sends)
            if what in ("s2", "all"):
                s2(url, tmp, [10, 100, 1000], 5)
            if what in ("s3", "all"):
                s3(url, tmp, 50, 4)
            if what in ("sql", "all"):
                sql(url, tmp)
    finally:
        server.terminate()
        server.wait(5)
    if what == "all":
        import_cost(7)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
