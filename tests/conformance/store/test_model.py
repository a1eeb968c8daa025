"""Random operation sequences against the real store and the in-memory model agree.

Each hypothesis example opens a fresh store (a new file, the in-memory database, or a
new table prefix on a server) and runs create / append (stale or not, with follow-ups
consumed) / enqueue / bump_stats / export+import / close_session, comparing everything
observable after every step. Servers run fewer examples (each one provisions a prefix).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from model import STAT_FIELDS, ModelConflict, ModelInvalid, ModelNotFound, StoreModel
from store_targets import Backend, drop_prefix

from power_loop.contracts.errors import InvalidArgumentError, SessionNotFoundError
from power_loop.store.dsn import open_store
from power_loop.store.port import WriteConflict
from power_loop.store.rows import NewMessage, StatsDelta
from power_loop.store.session_store import SessionStore

T = TypeVar("T")

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
MESSAGES = st.lists(st.tuples(st.sampled_from(["user", "assistant", "tool"]), JSON), max_size=3)
DELTAS = st.fixed_dictionaries({name: st.integers(0, 50) for name in STAT_FIELDS if name != "sends"})

def machine_settings(backend: Backend) -> settings:
    return settings(max_examples=12 if backend.is_server else 30, stateful_step_count=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def make_machine(backend: Backend) -> type[RuleBasedStateMachine]:
    class StoreMachine(RuleBasedStateMachine):
        ids = Bundle("ids")

        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.store: SessionStore = self.run(open_store(backend.dsn(), table_prefix=backend.prefix()))
            self.model = StoreModel()
            self.counter = 0
            self.first_send_at: dict[str, int] = {}

        def run(self, coro: Coroutine[Any, Any, T]) -> T:
            return self.loop.run_until_complete(coro)

        def teardown(self) -> None:
            if backend.is_server:
                self.run(drop_prefix(self.store))
            self.run(self.store.close())
            self.loop.close()

        def new_id(self) -> str:
            self.counter += 1
            return f"s{self.counter}"

        @initialize(target=ids)
        def first_root(self) -> str:
            sid = self.new_id()
            self.model.create(sid, None)
            self.run(self.store.create_session(session_id=sid))
            return sid

        @rule(target=ids, parent=st.none() | ids)
        def create(self, parent: str | None) -> str:
            sid = self.new_id()
            try:
                session = self.model.create(sid, parent)
            except ModelNotFound:
                with_error: type[Exception] = SessionNotFoundError
            except ModelInvalid:
                with_error = InvalidArgumentError
            else:
                row = self.run(self.store.create_session(
                    session_id=sid, parent_session_id=parent, kind=session.kind,
                    spawn_depth=session.spawn_depth))
                assert row.session_id == sid and row.next_seq == 1
                return sid
            depth = 0 if parent is None or parent not in self.model.sessions else \
                self.model.sessions[parent].spawn_depth + 1
            try:
                self.run(self.store.create_session(session_id=sid, parent_session_id=parent, kind="subagent",
                                                   spawn_depth=depth))
            except with_error:
                pass
            else:
                raise AssertionError(f"create under {parent!r} should raise {with_error.__name__}")
            return sid

        @rule(sid=ids, messages=MESSAGES, start_send=st.booleans(), stats=st.none() | DELTAS,
              stale=st.sampled_from([0, 0, 0, -1, 1]), consume=st.data())
        def append(self, sid: str, messages: list[tuple[str, Any]], start_send: bool,
                   stats: dict[str, int] | None, stale: int, consume: st.DataObject) -> None:
            session = self.model.sessions.get(sid)
            expected = max(1, (session.next_seq if session else 1) + stale)
            ids: list[int] = []
            if session is not None:
                queued = [fid for fid, _ in session.follow_ups]
                ids = consume.draw(st.lists(st.sampled_from(queued), unique=True) if queued else st.just([]))
                if consume.draw(st.integers(0, 2)) == 0:
                    ids.append(session.follow_up_seq + 1)  # never enqueued: the append must fail whole
            try:
                seqs = self.model.append(sid, messages, expected_next_seq=expected, start_send=start_send,
                                         stats=stats, consume=ids)
            except ModelNotFound:
                expected_error: type[Exception] = SessionNotFoundError
            except ModelConflict:
                expected_error = WriteConflict
            else:
                rows = self.run(self.store.append_messages(
                    sid, [NewMessage(role=r, content=c) for r, c in messages], expected_next_seq=expected,
                    start_send=start_send, stats=None if stats is None else StatsDelta(**stats),
                    consume_follow_ups=ids))
                assert [r.seq for r in rows] == seqs
                return
            try:
                self.run(self.store.append_messages(
                    sid, [NewMessage(role=r, content=c) for r, c in messages], expected_next_seq=expected,
                    start_send=start_send, stats=None if stats is None else StatsDelta(**stats),
                    consume_follow_ups=ids))
            except expected_error:
                return
            raise AssertionError(f"append should raise {expected_error.__name__}")

        @rule(sid=ids, content=JSON)
        def enqueue(self, sid: str, content: Any) -> None:
            try:
                depth = self.model.enqueue(sid, content)
            except ModelNotFound:
                try:
                    self.run(self.store.enqueue_follow_up(sid, content))
                except SessionNotFoundError:
                    return
                raise AssertionError("enqueue on a missing session should raise") from None
            assert self.run(self.store.enqueue_follow_up(sid, content)) == depth

        @rule(sid=ids, stats=DELTAS)
        def bump(self, sid: str, stats: dict[str, int]) -> None:
            try:
                self.model.bump(sid, stats)
            except ModelNotFound:
                try:
                    self.run(self.store.bump_stats(sid, StatsDelta(**stats)))
                except SessionNotFoundError:
                    return
                raise AssertionError("bump on a missing session should raise") from None
            self.run(self.store.bump_stats(sid, StatsDelta(**stats)))

        @rule(target=ids, sid=ids, through_json=st.booleans())
        def export_import(self, sid: str, through_json: bool) -> str:
            new_sid = self.new_id()
            if sid not in self.model.sessions:
                try:
                    self.run(self.store.export_session(sid))
                except SessionNotFoundError:
                    return new_sid
                raise AssertionError("exporting a missing session should raise")
            archive = self.run(self.store.export_session(sid))
            if through_json:
                archive = json.loads(json.dumps(archive))
            assert self.run(self.store.import_session(archive, new_session_id=new_sid)) == new_sid
            self.model.copy(sid, new_sid)
            return new_sid

        @rule(sid=ids, cascade=st.booleans())
        def close(self, sid: str, cascade: bool) -> None:
            expected = self.model.close(sid, cascade=cascade)
            assert self.run(self.store.close_session(sid, cascade=cascade)) == expected

        @invariant()
        def observable_state_matches(self) -> None:
            self.run(self.compare())

        async def compare(self) -> None:
            store, model = self.store, self.model
            for n in range(1, self.counter + 1):
                sid = f"s{n}"
                expected = model.sessions.get(sid)
                row = await store.get_session(sid)
                if expected is None:
                    assert row is None, sid
                    assert await store.load_all_messages(sid) == []
                    assert await store.list_follow_ups(sid) == []
                    assert await store.get_session_stats(sid) is None
                    continue
                assert row is not None, sid
                assert (row.next_seq, row.send_count, row.parent_session_id, row.kind, row.spawn_depth) == (
                    expected.next_seq, expected.send_count, expected.parent, expected.kind,
                    expected.spawn_depth)
                messages = await store.load_all_messages(sid)
                assert [(m.seq, m.role, m.content) for m in messages] == expected.messages
                assert await store.load_active_messages(sid) == messages
                follow_ups = await store.list_follow_ups(sid)
                assert [(f.follow_up_id, f.content) for f in follow_ups] == expected.follow_ups
                stats = await store.get_session_stats(sid)
                if expected.stats is None:
                    assert stats is None
                else:
                    assert stats is not None
                    assert {name: getattr(stats, name) for name in STAT_FIELDS} == expected.stats
                    assert stats.first_send_at is not None and stats.last_send_at is not None
                    assert stats.first_send_at <= stats.last_send_at
                    assert self.first_send_at.setdefault(sid, stats.first_send_at) == stats.first_send_at
                children = {c.session_id for c in await store.list_children(sid)}
                assert children == model.children(sid)
            listed = {s.session_id for s in await store.list_session_stats()}
            assert listed == {sid for sid, s in model.sessions.items() if s.stats is not None}

    return StoreMachine


def test_store_matches_the_model(backend: Backend) -> None:
    run_state_machine_as_test(make_machine(backend), settings=machine_settings(backend))
