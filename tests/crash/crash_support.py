"""Helpers of the crash tests: child processes, the fake server's hang rule, store checks.

The parent never opens the SQLite file for writing: it reads it through a read-only
``sqlite3`` URI connection, while a child runs (WAL readers never block the writer) and
after the child died.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from power_loop.testing import FakeLLMServer, Rule

HERE = Path(__file__).resolve().parent
CHILD = HERE / "agent_child.py"
WAIT_S = 30.0
"""Upper bound of every wait on a child or on the store."""

HEALED = "<aborted: auto-healed by send(heal_pending=True)>"
ABORTED = "<aborted: crash-test>"

T = TypeVar("T")


# -- the fake server's hang rule ------------------------------------------------------
class HangControl:
    """Holds an LLM request whose last tool result says ``result of <token>...`` (once per token).

    Tokens start with ``hang``. ``arm(token)`` returns (arrived, release): ``arrived`` is
    set when the request is in the server (the child's LLM call is in flight), the
    request answers once ``release`` is set. Later requests for the same token answer at
    once (the recovery's call).
    """

    PATTERN = r"result of (hang[0-9a-z]+)"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, tuple[threading.Event, threading.Event]] = {}

    def arm(self, token: str) -> tuple[threading.Event, threading.Event]:
        events = (threading.Event(), threading.Event())
        with self._lock:
            self._armed[token] = events
        return events

    def release_all(self) -> None:
        with self._lock:
            for _, release in self._armed.values():
                release.set()

    def reply(self, match: Any) -> str:
        tag = match.group(1)
        with self._lock:
            events = next((e for t, e in self._armed.items() if tag.startswith(t)), None)
        if events is not None and not events[0].is_set():
            events[0].set()
            events[1].wait(WAIT_S)
        return f"Final answer after {tag}."

    def rule(self) -> Rule:
        return Rule(self.PATTERN, reply=self.reply, match_tool_results=True)


def child_env(server: FakeLLMServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWER_LOOP_", "OPENAI_COMPAT_"))}
    env.update(POWER_LOOP_BASE_URL=server.base_url, POWER_LOOP_API_KEY="crash-test-key",
               POWER_LOOP_MODEL="fake-model", POWER_LOOP_PROVIDER="openai", POWER_LOOP_TIMEOUT_S="20",
               PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    return env


# -- child processes ------------------------------------------------------------------
@dataclass
class Line:
    kind: str
    payload: Any


class ChildProc:
    """A child started with ``sys.executable``; stdout lines parsed as ``KIND <json>``."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path, name: str) -> None:
        self.name = name
        self.stderr_path = workdir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=env, cwd=str(HERE.parent.parent))
        self.lines: list[Line] = []
        self._new: queue.Queue[Line | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"crash-reader-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            kind, _, rest = text.partition(" ")
            try:
                payload = json.loads(rest) if rest else None
            except ValueError:
                payload = rest
            line = Line(kind, payload)
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def fail(self, why: str) -> AssertionError:
        seen = "\n".join(f"{x.kind} {json.dumps(x.payload)[:300]}" for x in self.lines[-20:])
        return AssertionError(
            f"{self.name}: {why}\n-- last stdout lines --\n{seen}\n-- stderr --\n{self.stderr()}")

    def wait_for(self, kind: str, payload: Any = None, timeout: float = WAIT_S) -> Line:
        """The first line of ``kind`` (and ``payload``, when given), waiting for it."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if line.kind == kind and (payload is None or line.payload == payload):
                return line
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self.fail(f"no {kind} {payload!r} line within {timeout}s")
            try:
                line = self._new.get(timeout=left)  # type: ignore[assignment]
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(WAIT_S)
                raise self.fail(f"exited (rc={self.proc.returncode}) before printing {kind} {payload!r}")
            if line.kind == kind and (payload is None or line.payload == payload):
                return line

    def of(self, kind: str) -> list[Any]:
        return [x.payload for x in self.lines if x.kind == kind]

    def kill(self) -> None:
        """SIGKILL (no chance to clean up) and reap."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(WAIT_S)
        self._reader.join(WAIT_S)

    def finish(self, timeout: float = WAIT_S) -> None:
        """Wait for a clean exit (rc 0)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self.fail(f"did not finish within {timeout}s") from None
        self._reader.join(WAIT_S)
        if self.proc.returncode != 0:
            raise self.fail(f"exited with rc={self.proc.returncode}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@dataclass
class Workdir:
    root: Path
    server: FakeLLMServer
    db: Path = field(init=False)
    session_file: Path = field(init=False)
    log: Path = field(init=False)
    children: list[ChildProc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.db = self.root / "crash.db"
        self.session_file = self.root / "session.txt"
        self.log = self.root / "executions.jsonl"

    def start(self, name: str, *args: str) -> ChildProc:
        files = ["--db", str(self.db), "--session-file", str(self.session_file), "--log", str(self.log)]
        child = ChildProc([*files, *args], child_env(self.server), self.root, name)
        self.children.append(child)
        return child

    def close(self) -> None:
        for child in self.children:
            child.close()


def poll(what: str, check: Callable[[], T | None], timeout: float = WAIT_S, every: float = 0.01) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


# -- reading the store ----------------------------------------------------------------
@dataclass(frozen=True)
class Msg:
    seq: int
    role: str
    content: Any
    tool_call_id: str | None
    tool_call_ids: tuple[str, ...]
    state: str = "active"

    def digest(self) -> dict[str, Any]:
        return {"seq": self.seq, "role": self.role, "content": self.content,
                "tool_call_id": self.tool_call_id, "tool_call_ids": list(self.tool_call_ids)}


def read_messages(db: Path) -> dict[str, list[Msg]]:
    """Every session's messages by seq, read through a read-only connection."""
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=WAIT_S)
    try:
        try:
            rows = con.execute("SELECT session_id, seq, role, content, tool_calls, tool_call_id, state"
                               " FROM pl_messages ORDER BY session_id, seq").fetchall()
            sessions = [r[0] for r in con.execute("SELECT session_id FROM pl_sessions")]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise
    finally:
        con.close()
    out: dict[str, list[Msg]] = {sid: [] for sid in sessions}
    for sid, seq, role, content, calls, call_id, state in rows:
        ids = tuple(str(c.get("id")) for c in json.loads(calls)) if calls is not None else ()
        out.setdefault(sid, []).append(Msg(int(seq), role, json.loads(content), call_id, ids, state))
    return out


def next_seq(db: Path, sid: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=WAIT_S)
    try:
        row = con.execute("SELECT next_seq FROM pl_sessions WHERE session_id = ?", (sid,)).fetchone()
    finally:
        con.close()
    assert row is not None, sid
    return int(row[0])


def committed(child: ChildProc, sid: str) -> list[dict[str, Any]]:
    """The rows ``child`` reported committed for ``sid``, in order."""
    return [r for c in child.of("COMMIT") if c["sid"] == sid for r in c["rows"]]


def pending_ids(msgs: list[Msg]) -> list[str]:
    """The unresolved calls of the last assistant turn, derived like the engine does."""
    answered: set[str] = set()
    for m in reversed(msgs):
        if m.role == "tool":
            answered.add(str(m.tool_call_id))
            continue
        if m.role == "assistant" and m.tool_call_ids:
            return [c for c in m.tool_call_ids if c not in answered]
        return []
    return []


def check_invariants(sid: str, msgs: list[Msg], *, allow_pending: bool = False) -> None:
    """The store invariants every session must keep, whatever killed whom when.

    - seq is exactly 1..N, every row active (nothing folds here);
    - tool call ids are unique within the session;
    - each assistant turn's calls are answered by exactly one tool message each, in call
      order, by the tool messages right after it (only the last turn may be open when
      ``allow_pending``); no tool message answers anything else.
    """
    where = f"session {sid}"
    assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1)), f"{where}: seq not contiguous 1..N"
    assert all(m.state == "active" for m in msgs), f"{where}: non-active rows"
    all_ids = [c for m in msgs for c in m.tool_call_ids]
    assert len(all_ids) == len(set(all_ids)), f"{where}: duplicate tool call ids {all_ids}"
    answers = Counter(m.tool_call_id for m in msgs if m.role == "tool")
    for i, m in enumerate(msgs):
        if m.role == "tool":
            assert m.tool_call_id in all_ids, f"{where}: orphan tool message seq {m.seq}"
        if not (m.role == "assistant" and m.tool_call_ids):
            continue
        following = msgs[i + 1:i + 1 + len(m.tool_call_ids)]
        got = [f.tool_call_id for f in following if f.role == "tool"]
        is_last_turn = not any(x.role != "tool" for x in msgs[i + 1:])
        if allow_pending and is_last_turn:
            assert got == list(m.tool_call_ids[:len(got)]), f"{where}: seq {m.seq} answered as {got}"
        else:
            assert got == list(m.tool_call_ids), (
                f"{where}: assistant seq {m.seq} calls {list(m.tool_call_ids)} answered by {got}")
        for c in m.tool_call_ids:
            assert answers[c] <= 1, f"{where}: call {c} answered {answers[c]} times"
            if not (allow_pending and is_last_turn):
                assert answers[c] == 1, f"{where}: call {c} answered {answers[c]} times"


def executions(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(x) for x in log.read_text().splitlines() if x.strip()]


def execution_counts(log: Path) -> dict[tuple[str, str], Counter[str]]:
    """(session id, call id) -> Counter of phases that ran it."""
    out: dict[tuple[str, str], Counter[str]] = {}
    for e in executions(log):
        out.setdefault((e["sid"], e["call_id"]), Counter())[e["phase"]] += 1
    return out


def iter_calls(msgs: list[Msg]) -> Iterator[tuple[str, Msg | None]]:
    """Each call id with the tool message answering it (None while unresolved)."""
    by_id = {m.tool_call_id: m for m in msgs if m.role == "tool"}
    for m in msgs:
        for c in m.tool_call_ids:
            yield c, by_id.get(c)
