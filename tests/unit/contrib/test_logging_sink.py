"""attach_logging_sink: one JSON record per event, filtering, truncation and redaction."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest

from power_loop import AgentEvent, AgentEventBus, AgentEventType, InvalidArgumentError
from power_loop.contracts.events import (
    StatusChangedPayload,
    SystemLogPayload,
    ToolCallStartedPayload,
    UsageUpdatedPayload,
    UserNotificationPayload,
)
from power_loop.contrib.logging_sink import LoggingSink, attach_logging_sink

T = AgentEventType
LOGGER = "power_loop.events"
LogCapture = pytest.LogCaptureFixture


@pytest.fixture
def caplog_events(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def records(caplog: pytest.LogCaptureFixture, logger: str = LOGGER) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == logger]


def tool_call(**tool_input: Any) -> AgentEvent:
    return AgentEvent(T.TOOL_CALL_STARTED, data=ToolCallStartedPayload(
        name="http", tool_input=tool_input, tool_call_id="c1"), session_id="s1", round_index=0)


def test_each_event_becomes_one_json_record_on_power_loop_events(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus)
    event = AgentEvent(T.USER_NOTIFICATION, data=UserNotificationPayload(message="hello"), session_id="s1")
    bus.publish(event)
    [record] = [r for r in caplog_events.records if r.name == LOGGER]
    assert record.levelno == logging.INFO
    assert json.loads(record.getMessage()) == {
        "event": "user_notification", "seq": event.seq, "ts": event.ts, "session_id": "s1",
        "payload": {"message": "hello"},
    }


def test_round_index_and_source_appear_only_when_set(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus)
    bus.publish(AgentEvent(T.SYSTEM_LOG, data=SystemLogPayload(message="m"), round_index=2,
                           source="subagent"))
    bus.publish(AgentEvent(T.SYSTEM_LOG, data=SystemLogPayload(message="m")))
    with_both, with_neither = records(caplog_events)
    assert with_both["round_index"] == 2 and with_both["source"] == "subagent"
    assert "round_index" not in with_neither and "source" not in with_neither
    assert with_neither["session_id"] is None


def test_a_custom_logger_and_level_are_used(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="my.app.events")
    bus = AgentEventBus()
    attach_logging_sink(bus, logger=logging.getLogger("my.app.events"), level=logging.WARNING)
    bus.publish(AgentEvent(T.USER_NOTIFICATION, {"message": "x"}))
    [record] = caplog.records
    assert record.name == "my.app.events" and record.levelno == logging.WARNING


def test_nothing_is_logged_when_the_level_is_disabled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    bus = AgentEventBus()
    attach_logging_sink(bus, level=logging.DEBUG)
    bus.publish(AgentEvent(T.USER_NOTIFICATION, {"message": "x"}))
    assert records(caplog) == []


def test_events_restricts_the_logged_types(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus, events=[T.USAGE_UPDATED, T.USAGE_UPDATED, "system_log"])  # type: ignore[list-item]
    bus.publish(AgentEvent(T.USER_NOTIFICATION, {"message": "skipped"}))
    bus.publish(AgentEvent(T.USAGE_UPDATED, data=UsageUpdatedPayload(usage={"total_tokens": 5})))
    bus.publish(AgentEvent(T.SYSTEM_LOG, data=SystemLogPayload(message="kept")))
    assert [r["event"] for r in records(caplog_events)] == ["usage_updated", "system_log"]
    assert not bus.wants(T.USER_NOTIFICATION)


def test_a_single_event_type_may_be_given_instead_of_a_collection(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus, events=T.SYSTEM_LOG)  # type: ignore[arg-type]  # accepted convenience
    bus.publish(AgentEvent(T.SYSTEM_LOG, data=SystemLogPayload(message="m")))
    bus.publish(AgentEvent(T.USER_NOTIFICATION, {"message": "x"}))
    assert [r["event"] for r in records(caplog_events)] == ["system_log"]


def test_an_unknown_event_type_is_refused_before_subscribing() -> None:
    bus = AgentEventBus()
    with pytest.raises(InvalidArgumentError, match="nope"):
        attach_logging_sink(bus, events=[T.SYSTEM_LOG, "nope"])  # type: ignore[list-item]
    assert not bus.wants(T.SYSTEM_LOG)


def test_long_strings_are_truncated_at_max_field_len_with_a_marker(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus, max_field_len=10)
    bus.publish(tool_call(body="x" * 25, items=["y" * 12, "short"]))
    payload = records(caplog_events)[0]["payload"]
    assert payload["tool_input"]["body"] == "x" * 10 + "…[+15 chars]"
    assert payload["tool_input"]["items"] == ["y" * 10 + "…[+2 chars]", "short"]
    assert payload["name"] == "http"


def test_the_default_max_field_len_is_500(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus)
    bus.publish(AgentEvent(T.USER_NOTIFICATION, {"message": "m" * 500}))
    bus.publish(AgentEvent(T.USER_NOTIFICATION, {"message": "m" * 501}))
    exact, over = (r["payload"]["message"] for r in records(caplog_events))
    assert exact == "m" * 500 and over == "m" * 500 + "…[+1 chars]"


def test_a_negative_max_field_len_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="max_field_len"):
        attach_logging_sink(AgentEventBus(), max_field_len=-1)


@pytest.mark.parametrize("key", [
    "api_key", "authorization", "password", "secret", "access_token", "refresh_token", "client_secret",
    "Authorization", "API_KEY", "OPENAI_API_KEY", "apiKey", "X-Api-Key", "x-api-key", "db_password", "Cookie",
])
def test_values_under_secret_looking_keys_are_masked(caplog_events: LogCapture, key: str) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus)
    bus.publish(tool_call(**{key: "sk-123", "headers": {key: {"nested": "sk-456"}},
                             "list": [{key: "sk-789"}]}))
    text = caplog_events.records[0].getMessage()
    tool_input = json.loads(text)["payload"]["tool_input"]
    assert tool_input[key] == "***"
    assert tool_input["headers"][key] == "***"
    assert tool_input["list"][0][key] == "***"
    assert "sk-" not in text


@pytest.mark.parametrize("key", ["token", "prompt_tokens", "total_tokens", "max_tokens", "tokens", "query"])
def test_token_counts_and_ordinary_keys_are_never_masked(caplog_events: LogCapture, key: str) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus)
    bus.publish(tool_call(**{key: 42}))
    assert records(caplog_events)[0]["payload"]["tool_input"][key] == 42


def test_usage_payloads_keep_their_token_counts(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus)
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cache_read_tokens": 1}
    bus.publish(AgentEvent(T.USAGE_UPDATED, data=UsageUpdatedPayload(usage=usage, call_id="r0.a1")))
    assert records(caplog_events)[0]["payload"] == {"usage": usage, "call_id": "r0.a1"}


def test_empty_redact_keys_disables_redaction(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus, redact_keys=())
    bus.publish(tool_call(api_key="sk-visible"))
    assert records(caplog_events)[0]["payload"]["tool_input"]["api_key"] == "sk-visible"


def test_custom_redact_keys_replace_the_defaults(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus, redact_keys=["SSN"])
    bus.publish(tool_call(ssn="123-45-6789", patient_ssn="987", api_key="sk-visible"))
    tool_input = records(caplog_events)[0]["payload"]["tool_input"]
    assert tool_input["ssn"] == "***" and tool_input["patient_ssn"] == "***"
    assert tool_input["api_key"] == "sk-visible"


def test_values_json_cannot_hold_still_give_one_valid_json_object(caplog_events: LogCapture) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    bus = AgentEventBus()
    attach_logging_sink(bus)
    bus.publish(tool_call(obj=Opaque(), nan=math.nan, inf=math.inf, tup=(1, "a"), by={1: "int key"}))

    def refuse(constant: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {constant}")

    record = json.loads(caplog_events.records[0].getMessage(), parse_constant=refuse)
    tool_input = record["payload"]["tool_input"]
    assert tool_input["obj"] == "<opaque>"
    assert tool_input["nan"] == "nan" and tool_input["inf"] == "inf"
    assert tool_input["tup"] == [1, "a"] and tool_input["by"] == {"1": "int key"}


def test_status_changed_none_fields_are_logged_as_null(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    attach_logging_sink(bus)
    bus.publish(AgentEvent(T.STATUS_CHANGED, data=StatusChangedPayload(kind="hit_round_limit", max_rounds=3)))
    payload = records(caplog_events)[0]["payload"]
    assert payload["kind"] == "hit_round_limit" and payload["max_rounds"] == 3 and payload["phase"] is None


def test_detach_stops_logging_and_is_idempotent(caplog_events: LogCapture) -> None:
    bus = AgentEventBus()
    sink = attach_logging_sink(bus, events=[T.SYSTEM_LOG, T.USER_NOTIFICATION])
    assert isinstance(sink, LoggingSink)
    sink.detach()
    sink.detach()
    bus.publish(AgentEvent(T.SYSTEM_LOG, data=SystemLogPayload(message="m")))
    assert records(caplog_events) == []
    assert not bus.wants(T.SYSTEM_LOG) and not bus.wants(T.USER_NOTIFICATION)


async def test_the_sink_works_on_a_thread_dispatch_bus(caplog_events: LogCapture) -> None:
    bus = AgentEventBus(sync_dispatch="thread")
    attach_logging_sink(bus)
    events = [AgentEvent(T.USER_NOTIFICATION, {"message": str(i)}) for i in range(20)]
    for event in events:
        bus.publish(event)
    assert await bus.drain(timeout=5.0)
    bus.shutdown()
    assert [r["seq"] for r in records(caplog_events)] == [e.seq for e in events]
