"""SIGKILL a process sending on three sessions at random moments; recover; check everything.

Three rounds, reproducible from ``CRASH_SEED`` (the kill delays and every message the
children choose; only the exact kill instant relative to the child's progress is left to
the scheduler). Each round: a storm child sends in a loop on three sessions at once
(plain sends, one-call and two-call tool rounds, handlers with jitter) and is SIGKILLed
0.2-1.5 s in; a fresh child recovers each session (resume, heal or abort, rotating per
round), then sends once more on each. After the kill and after the recovery, every
session must satisfy the store invariants, hold every commit the children reported and
nothing else, and every tool call must have run as often as its fate says.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from typing import Any

import pytest
from crash_support import (
    ABORTED,
    HEALED,
    HangControl,
    Msg,
    Workdir,
    check_invariants,
    committed,
    execution_counts,
    iter_calls,
    next_seq,
    pending_ids,
    read_messages,
)

from power_loop.testing import FakeLLMServer

pytestmark = pytest.mark.slow

ROUNDS = 3
SEED = int(os.environ.get("CRASH_SEED", "20250117"))
PATHS = ("resume", "heal", "abort")


def _real(content: Any) -> bool:
    return isinstance(content, str) and content.startswith(("result of ", "slow result of "))


def _check_round(workdir: Workdir, rnd: int, sids: list[str], start: dict[str, list[Msg]],
                 killed: dict[str, list[Msg]], after: dict[str, list[Msg]], paths: dict[str, str]) -> None:
    counts = execution_counts(workdir.log)
    storm, recover = f"storm-r{rnd}", f"storm-recover-r{rnd}"
    for sid in sids:
        known = {c for m in start[sid] for c in m.tool_call_ids}
        answered_at_kill = {m.tool_call_id: m for m in killed[sid] if m.role == "tool"}
        pend = set(pending_ids(killed[sid]))
        calls = dict(iter_calls(after[sid]))
        ran_this_round = {cid for (s, cid), c in counts.items() if s == sid and (c[storm] or c[recover])}
        assert ran_this_round <= set(calls) - known, f"seed {SEED} round {rnd}: a call ran that no row holds"
        for cid, answer in calls.items():
            if cid in known:
                continue
            assert answer is not None
            ran = counts.get((sid, cid), Counter())
            where = f"seed {SEED} round {rnd} session {sid} call {cid}: ran {dict(ran)}"
            assert set(+ran) <= {storm, recover}, where
            if cid in answered_at_kill:
                assert ran[storm] == 1 and ran[recover] == 0, where
                assert answer == answered_at_kill[cid], where
                assert _real(answer.content), where
            elif cid in pend:
                assert ran[storm] <= 1, where  # it may have started (or even finished) before the kill
                if paths[sid] == "resume":
                    assert ran[recover] == 1 and _real(answer.content), where
                else:
                    assert ran[recover] == 0, where
                    assert answer.content == (HEALED if paths[sid] == "heal" else ABORTED), where
            else:
                assert ran[storm] == 0 and ran[recover] == 1, where
                assert _real(answer.content), where


def _state_at_kill(msgs: list[Msg]) -> str:
    """Where a session's send was when the process died (printed, for the curious)."""
    pend = pending_ids(msgs)
    if pend:
        turn = max(i for i, m in enumerate(msgs) if m.role == "assistant")
        return f"{len(pend)} of {len(msgs[turn].tool_call_ids)} call(s) unresolved"
    last = msgs[-1] if msgs else None
    if last is None:
        return "empty"
    if last.role == "tool":
        return "all results in, final LLM call"
    if last.role == "user":
        return "input in, first LLM call"
    return "between sends"


def test_sigkill_storm_on_three_sessions(workdir: Workdir,
                                        crash_server: tuple[FakeLLMServer, HangControl]) -> None:
    rng = random.Random(SEED)
    states: Counter[str] = Counter()
    for rnd in range(ROUNDS):
        start = read_messages(workdir.db)  # quiescent: nobody runs between rounds
        storm = workdir.start(f"storm{rnd}", "--phase", "storm", "--round", str(rnd), "--seed", str(SEED))
        sids: list[str] = storm.wait_for("READY").payload
        for sid in sids:
            start.setdefault(sid, [])
        time.sleep(rng.uniform(0.2, 1.5))
        assert storm.proc.poll() is None, storm.fail(f"seed {SEED}: the storm child died on its own")
        storm.kill()

        killed = read_messages(workdir.db)
        for sid in sids:
            msgs = killed[sid]
            check_invariants(sid, msgs, allow_pending=True)
            assert next_seq(workdir.db, sid) == len(msgs) + 1
            assert msgs[:len(start[sid])] == start[sid], f"seed {SEED}: rows of earlier rounds changed"
            new = [m.digest() for m in msgs[len(start[sid]):]]
            reported = committed(storm, sid)
            assert new[:len(reported)] == reported, f"seed {SEED}: a reported commit is missing or differs"
            # each storm commit is one row; only the one in flight at the kill may be unreported
            assert len(new) - len(reported) <= 1, f"seed {SEED}: rows nobody reported committing"
            states[_state_at_kill(msgs)] += 1

        order = PATHS[rnd % 3:] + PATHS[:rnd % 3]
        paths = {sid: order[k % 3] for k, sid in enumerate(sids)}
        rec = workdir.start(f"recover{rnd}", "--phase", "storm-recover", "--round", str(rnd),
                            "--seed", str(SEED), "--paths", ",".join(order))
        rec.finish()
        summary = rec.of("SUMMARY")[0]
        after = read_messages(workdir.db)
        for sid in sids:
            s = summary[sid]
            pend = pending_ids(killed[sid])
            assert s["pending_ids"] == pend
            if pend:
                assert s["pending_error"] == "session.pending", s
            if s["path"] == "abort":
                assert s["aborted"] == len(pend)
            else:
                assert s["recovery"]["status"] == "completed", s
            assert s["pending_after"] == [] and s["final"]["status"] == "completed", s
            check_invariants(sid, after[sid])
            assert pending_ids(after[sid]) == []
            assert [m.digest() for m in after[sid]] == [m.digest() for m in killed[sid]] + committed(rec, sid)
            assert next_seq(workdir.db, sid) == len(after[sid]) + 1
        _check_round(workdir, rnd, sids, start, killed, after, paths)
    # not an invariant, just a sanity check that the storm did real work
    assert sum(len(v) for v in read_messages(workdir.db).values()) > 20 * ROUNDS
    assert any(r.json.get("stream") for r in crash_server[0].requests), "the storm should stream"
    print(f"seed {SEED}: sessions at the kills: {dict(states)}")
