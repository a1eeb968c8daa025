"""SIGKILL a real agent process at named points of a send; recover in a fresh process.

Each test starts ``agent_child.py --phase run --point P``: it creates a session, sends
``hello there`` (no tools), then a tool send that stops at ``P`` (``AT P``); the parent
SIGKILLs it there. The store must then hold exactly what the child saw committed. A
fresh ``--phase recover --path R`` process probes ``send`` (``SessionPendingError`` when
calls are unresolved), recovers with ``resume()``, ``abort_pending()`` or
``send(heal_pending=True)``, and sends once more. The parent checks, from the SQLite file
and the executions log: every call answered exactly once, in call order; no message lost
or duplicated; seq contiguous; ``resume`` re-runs each unresolved call exactly once (a
call that was mid-execution at the kill ran once in each process: at-least-once), and
calls whose results were committed before the kill never run again.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from crash_support import (
    ABORTED,
    HEALED,
    WAIT_S,
    HangControl,
    Msg,
    Workdir,
    check_invariants,
    committed,
    execution_counts,
    iter_calls,
    next_seq,
    pending_ids,
    poll,
    read_messages,
)

from power_loop.testing import FakeLLMServer

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Shape:
    """What the store holds when the child is killed at a point."""

    messages: int
    """Rows of the session: user, assistant (warm-up), user (tool send), then these."""
    calls: int
    """Tool calls of the tool send's assistant turn (0: not committed yet)."""
    answered: int
    """Of those, how many have their result committed."""
    inflight: tuple[int, ...] = ()
    """Indexes of unresolved calls whose handler had started in the killed process."""


SHAPES = {
    "before_llm": Shape(messages=3, calls=0, answered=0),
    "after_assistant_commit": Shape(messages=4, calls=1, answered=0),
    "mid_tool_call": Shape(messages=4, calls=1, answered=0, inflight=(0,)),
    "after_tool_result": Shape(messages=5, calls=1, answered=1),
    "between_tool_results": Shape(messages=5, calls=2, answered=1, inflight=(1,)),
    "mid_llm_call": Shape(messages=5, calls=1, answered=1),
}
PATHS = ("resume", "abort", "heal")


def _real(content: Any) -> bool:
    return isinstance(content, str) and content.startswith(("result of ", "slow result of "))


def _kill_at(workdir: Workdir, hang: HangControl, point: str, token: str) -> tuple[str, list[Msg], list[Any]]:
    """Run the child to ``point``, SIGKILL it; return (session id, store rows, child's commits)."""
    release = None
    if point == "mid_llm_call":
        arrived, release = hang.arm(token)
    try:
        run = workdir.start("run", "--phase", "run", "--point", point, "--token", token)
        sid = run.wait_for("SESSION").payload
        run.wait_for("SENT")
        run.wait_for("AT", point)
        if point == "between_tool_results":
            # the first (fast) call's result must be visibly committed before the kill
            poll("the first tool result in the store",
                 lambda: any(m.role == "tool" for m in read_messages(workdir.db).get(sid, [])))
            poll("the child's report of that commit",
                 lambda: any(r["role"] == "tool" for r in committed(run, sid)))
        if point == "mid_llm_call":
            assert arrived.wait(WAIT_S), "the final LLM request never reached the fake server"
        assert run.proc.poll() is None, run.fail("died before the kill")
        run.kill()
    finally:
        if release is not None:
            release.set()
    assert run.proc.returncode == -9
    return sid, read_messages(workdir.db)[sid], committed(run, sid)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("point", list(SHAPES))
def test_kill_at_point_then_recover(point: str, path: str, workdir: Workdir,
                                    crash_server: tuple[FakeLLMServer, HangControl]) -> None:
    _, hang = crash_server
    shape = SHAPES[point]
    token = ("hang" if point == "mid_llm_call" else "t") + uuid.uuid4().hex[:10]
    sid, before, reported = _kill_at(workdir, hang, point, token)

    # -- the store after the kill: exactly what the child saw committed -----------------
    check_invariants(sid, before, allow_pending=True)
    assert [m.digest() for m in before] == reported, "store differs from the commits the child reported"
    assert next_seq(workdir.db, sid) == len(before) + 1
    assert len(before) == shape.messages, [m.digest() for m in before]
    assert [m.role for m in before[:3]] == ["user", "assistant", "user"]
    turn = before[3] if shape.calls else None
    calls = list(turn.tool_call_ids) if turn is not None else []
    assert len(calls) == shape.calls
    assert [m.tool_call_id for m in before[4:]] == calls[:shape.answered]
    pend = pending_ids(before)
    assert pend == calls[shape.answered:]
    inflight = {calls[i] for i in shape.inflight}
    counts = execution_counts(workdir.log)
    ran_before = {cid for (s, cid), c in counts.items() if s == sid and c["run"]}
    assert ran_before == set(calls[:shape.answered]) | inflight, "executions in the killed process"
    assert all(c["run"] == 1 for (s, _), c in counts.items() if s == sid)

    # -- recovery in a fresh process ------------------------------------------------------
    rec = workdir.start("recover", "--phase", "recover", "--path", path, "--token", token)
    rec.finish()
    summary = rec.of("SUMMARY")[0]
    assert summary["pending_ids"] == pend, "a fresh process derived other pending calls"
    if pend:
        assert summary["pending_error"] == "session.pending", summary
        assert summary["pending_error_ids"] == pend
    else:
        assert "pending_error" not in summary
    if path == "abort":
        assert summary["aborted"] == len(pend)
    else:
        assert summary["recovery"]["status"] == "completed", summary
    if path == "resume":
        assert summary["recovery"]["tool_calls"] == (1 if point == "before_llm" else len(pend))
        if point == "mid_llm_call":
            assert summary["recovery"]["final_text"] == f"Final answer after {token}a."
    assert summary["pending_after"] == []
    assert summary["final"]["status"] == "completed", summary
    assert f"{token}z" in summary["final"]["final_text"]  # the reply quotes the new result

    after = read_messages(workdir.db)[sid]
    check_invariants(sid, after)
    assert pending_ids(after) == []
    assert [m.digest() for m in after] == [m.digest() for m in before] + committed(rec, sid), \
        "recovery lost, duplicated or rewrote rows"
    assert next_seq(workdir.db, sid) == len(after) + 1
    assert not any(m.content == "are you there" for m in after), "the refused send wrote its input"

    # -- who ran what, how often ----------------------------------------------------------
    counts = execution_counts(workdir.log)
    answered_before = {m.tool_call_id: m for m in before if m.role == "tool"}
    all_calls = dict(iter_calls(after))
    ran_ids = {cid for (s, cid) in counts if s == sid}
    assert ran_ids <= set(all_calls), "a call ran that the store does not hold"
    new_calls = 0
    for cid, answer in all_calls.items():
        assert answer is not None
        ran = +counts.get((sid, cid), Counter())
        if cid in answered_before:
            assert ran == Counter(run=1), (cid, ran)  # committed before the kill: never re-run
            assert answer == answered_before[cid]
        elif cid in pend:
            want = Counter(run=1 if cid in inflight else 0, recover=1 if path == "resume" else 0)
            assert ran == +want, (cid, ran, want)
            expected_text = {"resume": None, "abort": ABORTED, "heal": HEALED}[path]
            if expected_text is None:
                assert _real(answer.content), answer
            else:
                assert answer.content == expected_text
        else:
            new_calls += 1
            assert ran == Counter(recover=1), (cid, ran)
            assert _real(answer.content), answer
    made_by_recovery = {"resume": 1 + (point == "before_llm"), "abort": 1, "heal": 2}[path]
    assert new_calls == made_by_recovery


def test_kill_again_during_resume(workdir: Workdir, crash_server: tuple[FakeLLMServer, HangControl]) -> None:
    """A crash inside ``resume()`` leaves the call unresolved; the next resume runs it again."""
    token = "t" + uuid.uuid4().hex[:10]
    sid, before, _ = _kill_at(workdir, crash_server[1], "mid_tool_call", token)
    pend = pending_ids(before)
    assert len(pend) == 1

    first = workdir.start("recover1", "--phase", "recover", "--path", "resume", "--token", token,
                          "--point", "mid_tool_call", "--label", "recover1")
    assert first.wait_for("PENDING_ERROR").payload == {"sid": sid, "code": "session.pending"}
    first.wait_for("AT", "mid_tool_call")
    first.kill()
    assert first.proc.returncode == -9
    middle = read_messages(workdir.db)[sid]
    assert committed(first, sid) == []  # resume appends nothing before the call's result
    assert middle == before
    assert next_seq(workdir.db, sid) == len(before) + 1

    second = workdir.start("recover2", "--phase", "recover", "--path", "resume", "--token", token,
                           "--label", "recover2")
    second.finish()
    summary = second.of("SUMMARY")[0]
    assert summary["pending_ids"] == pend and summary["pending_error"] == "session.pending"
    assert summary["recovery"]["status"] == "completed" and summary["recovery"]["tool_calls"] == 1
    assert summary["final"]["status"] == "completed"
    after = read_messages(workdir.db)[sid]
    check_invariants(sid, after)
    assert [m.digest() for m in after] == [m.digest() for m in before] + committed(second, sid)
    answer = dict(iter_calls(after))[pend[0]]
    assert answer is not None and answer.content == f"slow result of {token}a"
    # at-least-once: it ran in each of the three processes, and was answered exactly once
    assert execution_counts(workdir.log)[(sid, pend[0])] == Counter(run=1, recover1=1, recover2=1)
