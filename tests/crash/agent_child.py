"""The agent process the crash tests start, SIGKILL and restart.

Run as ``python tests/crash/agent_child.py --db PATH --session-file F --log L --phase P ...``
with ``POWER_LOOP_BASE_URL`` / ``POWER_LOOP_API_KEY`` / ``POWER_LOOP_MODEL`` pointing at
the ``FakeLLMServer`` of the parent test: the child talks to it over real HTTP through the
OpenAI-compatible transport and writes a real SQLite file.

Phases:

``run`` (with ``--point NAME``)
    Create a session, do one plain send, then a tool send that stops at the named point:
    the child prints ``AT <point>`` and blocks there until the parent kills it.
``recover`` (with ``--path resume|abort|heal``)
    A fresh process on the same file: probe ``send`` (it must raise ``SessionPendingError``
    when calls are unresolved), recover along ``--path``, do one more normal send and print
    a ``SUMMARY`` line. With ``--point`` it stops there again during the recovery.
``storm`` / ``storm-recover`` (with ``--round N --seed S``)
    Sends in a loop on three sessions until killed at a random moment / recover every
    session (``--paths`` says how, per session) and send once more on each.

Protocol (stdout, one JSON payload per line, flushed): ``SESSION``, ``COMMIT`` (after
every ``append_batch`` returned, i.e. after its commit), ``AT``, ``PENDING_ERROR``,
``SUMMARY``, ``READY``. Every tool execution appends one JSON line to the ``--log`` file
(open, append, flush, fsync) so the parent can count executions per tool call id.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from power_loop import (
    AgentHooks,
    AgentLoopConfig,
    HookPoint,
    SessionPendingError,
    StatefulAgentLoop,
    StatefulResult,
    ToolRegistry,
    create_llm_service_from_env,
)

POINTS = (
    "before_llm",
    "after_assistant_commit",
    "mid_tool_call",
    "after_tool_result",
    "between_tool_results",
    "mid_llm_call",
)
"""Where the ``run`` phase stops (see ``tool_send_text`` for the send each point makes)."""

STORM_SESSIONS = 3
BLOCK_S = 600.0
"""How long a stopped child waits for its SIGKILL before giving up on its own."""

_current_call: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "crash_current_call", default=None
)


def emit(kind: str, payload: Any) -> None:
    sys.stdout.write(f"{kind} {json.dumps(payload, sort_keys=True)}\n")
    sys.stdout.flush()


def write_atomically(path: str, text: str) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_text(path: str) -> str | None:
    file = Path(path)
    return file.read_text().strip() if file.exists() else None


def tool_send_text(point: str, token: str) -> str:
    """The user text of the send that stops at ``point``."""
    if point == "mid_tool_call":
        return f"call slow_tool tag={token}a"
    if point == "between_tool_results":
        return f"call quick_tool tag={token}a and call slow_tool tag={token}b"
    return f"call quick_tool tag={token}a"


class Child:
    """Shared state of one child process: the executions log, the stop point, the loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.phase: str = args.label or (args.phase if args.round is None else f"{args.phase}-r{args.round}")
        self.point: str | None = args.point
        self.armed = False
        """The points only fire while armed: during the ``run`` phase's tool send, or during a
        ``recover`` given ``--point`` (a second crash, inside the recovery)."""
        self.jitter_rng = random.Random(f"{args.seed}:{args.phase}:{args.round}:jitter")
        self.jitter_s = 0.05 if args.phase == "storm" else 0.0
        hooks = AgentHooks()
        hooks.register(HookPoint.TOOL_BEFORE, self._tool_before)
        hooks.register(HookPoint.LLM_BEFORE, self._llm_before)
        hooks.register(HookPoint.ROUND_DECIDE, self._round_decide)
        hooks.register(HookPoint.TOOLS_BATCH_AFTER, self._tools_batch_after)
        config = AgentLoopConfig(stream=args.phase == "storm")  # the storm streams its LLM calls
        self.loop = StatefulAgentLoop(llm=create_llm_service_from_env(), dsn=args.db, config=config,
                                      tool_registry=self._registry(), hooks=hooks)

    # -- observation ------------------------------------------------------------------
    async def open(self) -> None:
        """Open the store and report every commit once ``append_batch`` returned (the engine's
        one path for appending messages; ``append_messages`` delegates to it)."""
        store = await self.loop.ensure_store()
        original = store.append_batch

        async def traced(session_id: str, messages: Any, **kwargs: Any) -> Any:
            outcome = await original(session_id, messages, **kwargs)
            emit("COMMIT", {"sid": session_id, "rows": [
                {"seq": r.seq, "role": r.role, "content": r.content, "tool_call_id": r.tool_call_id,
                 "tool_call_ids": [c.get("id") for c in r.tool_calls or []]}
                for r in outcome.rows]})
            return outcome

        store.append_batch = traced  # type: ignore[method-assign]

    def record(self, tool: str, tag: str) -> None:
        sid, call_id = _current_call.get() or ("?", "?")
        line = json.dumps({"sid": sid, "call_id": call_id, "tool": tool, "tag": tag, "phase": self.phase,
                           "pid": os.getpid()})
        with open(self.args.log, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    async def stop_here(self, point: str) -> None:
        emit("AT", point)
        await asyncio.sleep(BLOCK_S)
        emit("NOT_KILLED", point)
        os._exit(3)

    # -- tools ------------------------------------------------------------------------
    def _registry(self) -> ToolRegistry:
        registry = ToolRegistry()

        @registry.tool
        async def quick_tool(tag: str) -> str:
            """Answer at once.

            Args:
                tag: A label echoed in the result.
            """
            self.record("quick_tool", tag)
            if self.jitter_s:
                await asyncio.sleep(self.jitter_rng.uniform(0, self.jitter_s / 3))
            return f"result of {tag}"

        @registry.tool
        async def slow_tool(tag: str) -> str:
            """Answer after a while (blocks where the crash test stops the process).

            Args:
                tag: A label echoed in the result.
            """
            self.record("slow_tool", tag)
            if self.armed and self.point in ("mid_tool_call", "between_tool_results"):
                await self.stop_here(self.point)
            if self.jitter_s:
                await asyncio.sleep(self.jitter_rng.uniform(0, self.jitter_s))
            return f"slow result of {tag}"

        return registry

    # -- hooks ------------------------------------------------------------------------
    def _tool_before(self, ctx: Any) -> None:
        _current_call.set((str(ctx.session_id), str(ctx.tool_call.get("id"))))

    async def _llm_before(self, ctx: Any) -> None:
        if not self.armed:
            return
        if self.point == "before_llm" and ctx.round_index == 1:
            await self.stop_here("before_llm")
        if self.point == "mid_llm_call" and ctx.round_index == 2:
            emit("AT", "mid_llm_call")  # the fake server holds this request; the parent kills then

    async def _round_decide(self, ctx: Any) -> None:
        if self.armed and self.point == "after_assistant_commit":
            await self.stop_here("after_assistant_commit")

    async def _tools_batch_after(self, ctx: Any) -> None:
        if self.armed and self.point == "after_tool_result":
            await self.stop_here("after_tool_result")


def describe(result: StatefulResult) -> dict[str, Any]:
    return {"status": result.status, "final_text": result.final_text, "tool_calls": result.tool_calls,
            "rounds": result.rounds}


async def probe_pending(loop: StatefulAgentLoop, sid: str) -> dict[str, Any]:
    """Report the pending calls; when there are some, a plain send must refuse."""
    pending = await loop.get_pending(sid)
    out: dict[str, Any] = {"pending_ids": [c["id"] for c in pending["tool_calls"]] if pending else []}
    if pending:
        try:
            await loop.send("are you there", sid)
        except SessionPendingError as exc:
            emit("PENDING_ERROR", {"sid": sid, "code": exc.code})
            out["pending_error"] = exc.code
            out["pending_error_ids"] = [c["id"] for c in exc.pending_tool_calls]
        else:
            out["pending_error"] = None
    return out


async def recover_session(loop: StatefulAgentLoop, sid: str, path: str, tag: str) -> dict[str, Any]:
    out = await probe_pending(loop, sid)
    out["path"] = path
    if path == "resume":
        out["recovery"] = describe(await loop.resume(sid))
    elif path == "abort":
        out["aborted"] = await loop.abort_pending(sid, reason="crash-test")
    elif path == "heal":
        out["recovery"] = describe(await loop.send(f"call quick_tool tag={tag}h", sid, heal_pending=True))
    else:
        raise SystemExit(f"unknown recovery path {path!r}")
    after = await loop.get_pending(sid)
    out["pending_after"] = [c["id"] for c in after["tool_calls"]] if after else []
    out["final"] = describe(await loop.send(f"call quick_tool tag={tag}z", sid))
    return out


# -- phases ---------------------------------------------------------------------------
async def phase_run(child: Child) -> None:
    args = child.args
    loop = child.loop
    sid = await loop.new_session(metadata={"crash_point": args.point})
    write_atomically(args.session_file, sid)
    emit("SESSION", sid)
    emit("SENT", describe(await loop.send("hello there", sid)))
    child.armed = True
    result = await loop.send(tool_send_text(args.point, args.token), sid)
    emit("UNEXPECTED_END", describe(result))
    raise SystemExit(4)


async def phase_recover(child: Child) -> None:
    args = child.args
    sid = read_text(args.session_file)
    assert sid, "no session file"
    child.armed = args.point is not None  # stop again, this time inside the recovery
    summary = await recover_session(child.loop, sid, args.path, args.token)
    emit("SUMMARY", summary)


async def phase_storm(child: Child) -> None:
    args = child.args
    loop = child.loop
    known = read_text(args.session_file)
    if known is not None:
        sids = json.loads(known)
    else:
        sids = [await loop.new_session(metadata={"storm": k}) for k in range(STORM_SESSIONS)]
        write_atomically(args.session_file, json.dumps(sids))
    emit("READY", sids)

    async def storm(k: int, sid: str) -> None:
        rng = random.Random(f"{args.seed}:{args.round}:{k}")
        i = 0
        while True:
            i += 1
            tag = f"r{args.round}s{k}i{i}"
            kind = rng.choice(("plain", "one", "two", "two"))
            if kind == "plain":
                text = f"hello number {i}"
            elif kind == "one":
                text = f"call quick_tool tag={tag}a"
            else:
                text = f"call quick_tool tag={tag}a and call slow_tool tag={tag}b"
            await loop.send(text, sid)

    await asyncio.gather(*(storm(k, sid) for k, sid in enumerate(sids)))


async def phase_storm_recover(child: Child) -> None:
    args = child.args
    sids = json.loads(read_text(args.session_file) or "[]")
    paths = args.paths.split(",")
    summary = {sid: await recover_session(child.loop, sid, paths[k % len(paths)], f"r{args.round}s{k}rec")
               for k, sid in enumerate(sids)}
    emit("SUMMARY", summary)


PHASES = {"run": phase_run, "recover": phase_recover, "storm": phase_storm,
          "storm-recover": phase_storm_recover}


async def amain(args: argparse.Namespace) -> None:
    child = Child(args)
    await child.open()
    try:
        await PHASES[args.phase](child)
    finally:
        await child.loop.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", required=True)
    parser.add_argument("--session-file", required=True)
    parser.add_argument("--log", required=True, help="the executions log (one JSON line per tool run)")
    parser.add_argument("--phase", choices=sorted(PHASES), required=True)
    parser.add_argument("--point", choices=POINTS)
    parser.add_argument("--path", choices=("resume", "abort", "heal"), default="resume")
    parser.add_argument("--paths", default="resume,heal,abort", help="storm-recover: per-session paths")
    parser.add_argument("--token", default="t", help="prefix of the tool tags of this test")
    parser.add_argument("--label", default=None, help="the phase name written to the executions log")
    parser.add_argument("--round", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.phase == "run" and args.point is None:
        parser.error("--phase run needs --point")
    asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
