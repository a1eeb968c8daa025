"""AgentEvent: typed payloads, lazy payload dicts, process-wide seq, stamps and round trips."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from power_loop import AgentEvent, AgentEventType, InvalidArgumentError
from power_loop.contracts import events as events_module
from power_loop.contracts.events import (
    PAYLOAD_TYPES,
    BaseEventPayload,
    LLMCallCompletedPayload,
    SystemLogPayload,
    ToolCallStartedPayload,
    UserNotificationPayload,
)

T = AgentEventType

CONTRACT_TYPES = {
    "SESSION_STARTED": "session_started", "SESSION_ENDED": "session_ended",
    "ROUND_STARTED": "round_started", "ROUND_COMPLETED": "round_completed",
    "ROUND_TOOLS_PRESENT": "round_tools_present", "LLM_CALL_STARTED": "llm_call_started",
    "LLM_CALL_COMPLETED": "llm_call_completed", "LLM_RETRY_ATTEMPTED": "llm_retry_attempted",
    "LLM_DEGRADED": "llm_degraded", "LOOP_CANCELLED": "loop_cancelled",
    "MEMORY_RECALLED": "memory_recalled", "MEMORY_FAILED": "memory_failed",
    "STREAM_STARTED": "stream_started", "STREAM_DELTA": "stream_delta",
    "STREAM_THINK_DELTA": "stream_think_delta", "STREAM_COMPLETED": "stream_completed",
    "TOOL_CALL_STARTED": "tool_call_started", "TOOL_CALL_COMPLETED": "tool_call_completed",
    "TOOL_CALL_FAILED": "tool_call_failed", "STATUS_CHANGED": "status_changed",
    "USAGE_UPDATED": "usage_updated", "TIMER_FIRED": "timer_fired", "TODO_UPDATED": "todo_updated",
    "USER_NOTIFICATION": "user_notification", "AGENT_ERROR": "agent_error", "SYSTEM_LOG": "system_log",
    "SUBAGENT_TASK_START": "subagent_task_start", "SUBAGENT_TEXT": "subagent_text",
    "SUBAGENT_LIMIT": "subagent_limit", "SUBAGENT_COMPLETED": "subagent_completed",
}

CONTRACT_FIELDS = {
    T.SESSION_STARTED: {"scope"}, T.SESSION_ENDED: {"reason"},
    T.ROUND_STARTED: {"round_index", "has_tools"}, T.ROUND_COMPLETED: {"round_index", "has_tools"},
    T.ROUND_TOOLS_PRESENT: {"has_tools"}, T.LLM_CALL_STARTED: {"call_id", "attempt", "model"},
    T.LLM_CALL_COMPLETED: {"call_id", "attempt", "model", "duration_ms", "success", "error_type"},
    T.LLM_RETRY_ATTEMPTED: {"attempt", "max_attempts", "error_type", "error_message", "next_sleep_seconds"},
    T.LLM_DEGRADED: {"reason", "attempts", "error_type"}, T.LOOP_CANCELLED: {"reason"},
    T.MEMORY_RECALLED: {"returned", "injected"}, T.MEMORY_FAILED: {"phase", "error_type"},
    T.STREAM_STARTED: {"stream_id"}, T.STREAM_DELTA: {"stream_id", "text", "is_think"},
    T.STREAM_THINK_DELTA: {"stream_id", "text", "is_think"}, T.STREAM_COMPLETED: {"stream_id"},
    T.TOOL_CALL_STARTED: {"name", "tool_input", "tool_call_id"},
    T.TOOL_CALL_COMPLETED: {"name", "tool_input", "tool_call_id", "output", "failed"},
    T.TOOL_CALL_FAILED: {"name", "tool_input", "tool_call_id", "output", "failed"},
    T.STATUS_CHANGED: {"kind", "phase", "before_tokens", "after_tokens", "max_rounds", "budget_tokens",
                       "spent_tokens"},
    T.USAGE_UPDATED: {"usage"}, T.TIMER_FIRED: {"timer_id", "note", "due_at", "outcome"},
    T.TODO_UPDATED: {"items"}, T.USER_NOTIFICATION: {"message"}, T.AGENT_ERROR: {"error", "error_type"},
    T.SYSTEM_LOG: {"message", "level"},
    T.SUBAGENT_TASK_START: {"sub_session_id", "status", "final_text"},
    T.SUBAGENT_TEXT: {"sub_session_id", "status", "final_text"},
    T.SUBAGENT_LIMIT: {"sub_session_id", "status", "final_text"},
    T.SUBAGENT_COMPLETED: {"sub_session_id", "status", "final_text"},
}


def payload_class_name(event_type: AgentEventType) -> str:
    words = event_type.value.split("_")
    return "".join("LLM" if w == "llm" else w.capitalize() for w in words) + "Payload"


# -- the type catalogue -----------------------------------------------------------------
def test_every_contract_event_type_exists_with_its_value() -> None:
    for name, value in CONTRACT_TYPES.items():
        assert AgentEventType[name].value == value
        assert AgentEventType(value) is AgentEventType[name]


@pytest.mark.parametrize("event_type", list(T), ids=lambda t: t.value)
def test_every_event_type_has_its_own_payload_class(event_type: AgentEventType) -> None:
    cls = PAYLOAD_TYPES.get(event_type)
    assert cls is not None, f"{event_type} has no payload class in PAYLOAD_TYPES"
    assert issubclass(cls, BaseEventPayload)
    assert cls.__name__ == payload_class_name(event_type)
    assert cls.event_type is event_type
    assert getattr(events_module, cls.__name__) is cls
    assert dataclasses.is_dataclass(cls)
    assert CONTRACT_FIELDS.get(event_type, set()) <= {f.name for f in dataclasses.fields(cls)}
    cls()  # every field has a default


def test_payload_classes_are_distinct_per_type() -> None:
    assert len(set(PAYLOAD_TYPES.values())) == len(PAYLOAD_TYPES) == len(T)


def test_payloads_are_slotted_dataclasses_with_no_stray_attributes() -> None:
    # Not frozen (import cost, hot path); read-only by convention, but never open-ended.
    data = UserNotificationPayload(message="hi")
    with pytest.raises(AttributeError):
        data.colour = "red"  # type: ignore[attr-defined]  # the point of the test


# -- payload and data -------------------------------------------------------------------
def test_payload_is_data_to_dict() -> None:
    data = LLMCallCompletedPayload(call_id="r0.a1", attempt=1, model="m", duration_ms=12.5, total_tokens=7)
    event = AgentEvent(T.LLM_CALL_COMPLETED, data=data)
    assert event.payload == data.to_dict()
    assert event.payload["call_id"] == "r0.a1"
    assert event.data is data


def test_payload_dict_is_built_lazily_and_once() -> None:
    calls: list[int] = []

    @dataclasses.dataclass(slots=True, kw_only=True)
    class CountingPayload(UserNotificationPayload):
        def to_dict(self) -> dict[str, Any]:
            calls.append(1)
            return UserNotificationPayload.to_dict(self)

    event = AgentEvent(T.USER_NOTIFICATION, data=CountingPayload(message="x"))
    assert calls == []
    assert event.payload == {"message": "x"}
    assert event.payload is event.payload
    assert calls == [1]


def test_an_event_built_from_a_payload_dict_gets_typed_data() -> None:
    event = AgentEvent(T.SYSTEM_LOG, {"message": "disk low", "level": "warning"})
    assert event.data == SystemLogPayload(message="disk low", level="warning")
    assert event.payload == {"message": "disk low", "level": "warning"}


def test_an_event_without_payload_or_data_has_an_empty_payload() -> None:
    event = AgentEvent(T.USER_NOTIFICATION)
    assert event.payload == {}
    assert event.data is None


def test_event_type_may_be_given_as_its_value_string() -> None:
    event = AgentEvent("user_notification", {"message": "m"})  # type: ignore[arg-type]  # accepted value
    assert event.type is T.USER_NOTIFICATION


def test_unknown_event_type_raises_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="no_such_event"):
        AgentEvent("no_such_event")  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(InvalidArgumentError):
        AgentEvent.from_dict({"type": "no_such_event", "payload": {}})
    with pytest.raises(InvalidArgumentError):
        AgentEvent.from_dict({"payload": {}})


def test_data_of_another_types_payload_class_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="UserNotificationPayload"):
        AgentEvent(T.USER_NOTIFICATION, data=SystemLogPayload(message="x"))


# -- stamps -----------------------------------------------------------------------------
def test_events_are_stamped_with_wall_clock_and_monotonic_time_at_creation() -> None:
    wall_before, mono_before = time.time(), time.monotonic()
    event = AgentEvent(T.USER_NOTIFICATION)
    assert wall_before <= event.ts <= time.time()
    assert mono_before <= event.mono <= time.monotonic()


def test_seq_is_strictly_increasing_in_creation_order() -> None:
    seqs = [AgentEvent(T.STREAM_DELTA).seq for _ in range(100)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_seq_is_unique_and_increasing_per_thread_across_threads() -> None:
    per_thread: dict[int, list[int]] = {}
    start = threading.Barrier(8)

    def make(index: int) -> None:
        start.wait(5)
        per_thread[index] = [AgentEvent(T.STREAM_DELTA).seq for _ in range(500)]

    threads = [threading.Thread(target=make, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    everything = [seq for seqs in per_thread.values() for seq in seqs]
    assert len(everything) == len(set(everything)) == 8 * 500
    for seqs in per_thread.values():
        assert all(a < b for a, b in itertools.pairwise(seqs))


def test_equality_ignores_the_stamps_but_not_the_content() -> None:
    a = AgentEvent(T.USER_NOTIFICATION, {"message": "x"}, session_id="s", round_index=1)
    b = AgentEvent(T.USER_NOTIFICATION, data=UserNotificationPayload(message="x"), session_id="s",
                   round_index=1, ts=1.0, mono=2.0)
    assert a.seq != b.seq and a == b
    assert a != AgentEvent(T.USER_NOTIFICATION, {"message": "y"}, session_id="s", round_index=1)
    assert a != AgentEvent(T.USER_NOTIFICATION, {"message": "x"}, session_id="other", round_index=1)
    assert a != AgentEvent(T.USER_NOTIFICATION, {"message": "x"}, session_id="s", round_index=2)
    assert a != AgentEvent(T.USER_NOTIFICATION, {"message": "x"}, session_id="s", round_index=1,
                           source="subagent")
    assert a != AgentEvent(T.SYSTEM_LOG, {"message": "x"}, session_id="s", round_index=1)
    assert a.__eq__("not an event") is NotImplemented


def test_events_are_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(AgentEvent(T.USER_NOTIFICATION))


# -- to_dict / from_dict ----------------------------------------------------------------
def test_to_dict_carries_every_field_and_from_dict_restores_stamps_and_typed_data() -> None:
    data = ToolCallStartedPayload(name="bash", tool_input={"command": "ls"}, tool_call_id="c1")
    event = AgentEvent(T.TOOL_CALL_STARTED, data=data, session_id="s1", round_index=3, stream_id="st",
                       source="subagent")
    d = event.to_dict()
    assert d == {"type": "tool_call_started", "payload": data.to_dict(), "session_id": "s1",
                 "round_index": 3, "stream_id": "st", "source": "subagent", "ts": event.ts,
                 "seq": event.seq, "mono": event.mono}
    back = AgentEvent.from_dict(json.loads(json.dumps(d)))
    assert back == event
    assert (back.ts, back.seq, back.mono) == (event.ts, event.seq, event.mono)
    assert back.data == data and type(back.data) is ToolCallStartedPayload


def test_mutating_to_dict_output_leaves_the_event_alone() -> None:
    event = AgentEvent(T.USER_NOTIFICATION, {"message": "x"})
    event.to_dict()["payload"]["message"] = "changed"
    assert event.payload == {"message": "x"}


def test_from_dict_keeps_unknown_payload_keys_and_defaults_missing_ones() -> None:
    back = AgentEvent.from_dict({"type": "system_log", "payload": {"message": "m", "added_later": 1}})
    assert back.payload == {"message": "m", "added_later": 1}
    assert back.data == SystemLogPayload(message="m", level="info")


def test_from_dict_without_stamps_stamps_the_event_now() -> None:
    before = AgentEvent(T.USER_NOTIFICATION).seq
    back = AgentEvent.from_dict({"type": "user_notification", "payload": {"message": "m"}})
    assert back.seq > before and back.ts > 0 and back.mono > 0


_JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=20))
_JSON_OBJECT = st.dictionaries(st.text(max_size=10), _JSON_SCALAR, max_size=4)
_BY_ANNOTATION: dict[Any, st.SearchStrategy[Any]] = {
    str: st.text(max_size=40),
    int: st.integers(-10**9, 10**9),
    bool: st.booleans(),
    float: st.floats(allow_nan=False, allow_infinity=False),
    dict[str, int]: st.dictionaries(st.text(max_size=10), st.integers(0, 10**9), max_size=5),
}


def _strategy_for(annotation: Any) -> st.SearchStrategy[Any] | None:
    if annotation in _BY_ANNOTATION:
        return _BY_ANNOTATION[annotation]
    args = typing.get_args(annotation)
    if type(None) in args:
        inner = [a for a in args if a is not type(None)]
        base = _strategy_for(inner[0]) if len(inner) == 1 else None
        return None if base is None else st.one_of(st.none(), base)
    origin = typing.get_origin(annotation)
    if origin is dict:
        return _JSON_OBJECT
    if origin is list:
        return st.lists(_JSON_OBJECT, max_size=3)
    return None


@st.composite
def any_event(draw: st.DrawFn) -> AgentEvent:
    event_type = draw(st.sampled_from(list(T)))
    cls = PAYLOAD_TYPES[event_type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        strategy = _strategy_for(hints[f.name])
        if strategy is not None and draw(st.booleans()):
            kwargs[f.name] = draw(strategy)
    return AgentEvent(
        event_type, data=cls(**kwargs),
        session_id=draw(st.none() | st.text(max_size=12)),
        round_index=draw(st.none() | st.integers(0, 1000)),
        stream_id=draw(st.none() | st.text(max_size=8)),
        source=draw(st.sampled_from([None, "subagent", "workflow"])),
    )


@settings(max_examples=200)
@given(event=any_event())
def test_to_dict_from_dict_round_trips_through_json_for_any_payload(event: AgentEvent) -> None:
    back = AgentEvent.from_dict(json.loads(json.dumps(event.to_dict())))
    assert back == event
    assert (back.ts, back.seq, back.mono) == (event.ts, event.seq, event.mono)
    assert back.data == event.data and type(back.data) is type(event.data)
    assert back.data is not None and back.payload == back.data.to_dict()
