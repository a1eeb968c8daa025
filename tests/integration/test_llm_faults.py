"""Provider misbehaviour through the loop over real HTTP: retries only where they belong,
a clear degraded result or a tool result the model can react to, a consistent store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from provider_support import FAST_RETRY, PROVIDERS, Recorder, llm_config, loop_over, registry

from power_loop import (
    AgentEventBus,
    AgentEventType,
    AgentLoopConfig,
    LLMRetryExhausted,
    LLMRetryPolicy,
    LLMTimeout,
    create_llm_service_from_config,
    with_retry,
)
from power_loop.llm.contract import LLMRequest
from power_loop.testing import FakeLLMServer, Fault, Rule

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)


def roles(messages: list[dict[str, object]]) -> list[str]:
    return [str(m["role"]) for m in messages]


async def test_429_retry_after_is_honoured_and_nothing_is_duplicated(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.inject_fault(Fault("http_error", status=429, retry_after_s=0.3))
    bus = AgentEventBus()
    recorder = Recorder(bus)
    config = AgentLoopConfig(retry_policy=LLMRetryPolicy(max_attempts=3, backoff_initial=0.001, total_timeout=None))
    async with loop_over(fake_server, provider, tmp_path, config=config, bus=bus) as loop:
        sid = await loop.new_session()
        started = time.monotonic()
        result = await loop.send("hello", sid)
        elapsed = time.monotonic() - started
        messages = await loop.get_messages(sid)
    assert (result.status, result.final_text) == ("completed", "You said: hello")
    (retry,) = recorder.of(AgentEventType.LLM_RETRY_ATTEMPTED)
    assert (retry.payload["attempt"], retry.payload["next_sleep_seconds"]) == (1, 0.3)
    assert "429" in retry.payload["error_message"] and elapsed >= 0.3
    assert roles(messages) == ["user", "assistant"] and len(fake_server.requests) == 2
    attempts = [e.payload["attempt"] for e in recorder.of(AgentEventType.LLM_CALL_STARTED)]
    assert attempts == [1, 2]


@pytest.mark.parametrize("fault", [
    Fault("http_error", status=500, count=2), Fault("http_error", status=503, count=2),
    Fault("http_error", status=529, count=2), Fault("disconnect", count=2),
    Fault("empty_choices", count=2), Fault("truncated_stream", count=2),
])
async def test_transient_failures_are_retried_with_backoff(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str, fault: Fault
) -> None:
    fake_server.inject_fault(fault)
    bus = AgentEventBus()
    recorder = Recorder(bus)
    config = AgentLoopConfig(retry_policy=FAST_RETRY, stream=True)
    async with loop_over(fake_server, provider, tmp_path, config=config, bus=bus, tools=registry()) as loop:
        sid = await loop.new_session()
        result = await loop.send("call math_add a=1 b=2", sid)
        messages = await loop.get_messages(sid)
    assert result.status == "completed" and result.tool_calls == 1
    retries = recorder.of(AgentEventType.LLM_RETRY_ATTEMPTED)
    assert [e.payload["next_sleep_seconds"] for e in retries] == [0.01, 0.02]  # exponential backoff
    assert roles(messages) == ["user", "assistant", "tool", "assistant"]  # no duplicate turn
    assert len(fake_server.requests) == 4


async def test_400_is_never_retried_and_the_run_degrades(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.inject_fault(Fault("http_error", status=400, message="messages: roles must alternate"))
    bus = AgentEventBus()
    recorder = Recorder(bus)
    async with loop_over(fake_server, provider, tmp_path, config=AgentLoopConfig(retry_policy=FAST_RETRY),
                         bus=bus) as loop:
        sid = await loop.new_session()
        result = await loop.send("hello", sid)
        after = await loop.send("still there?", sid)
        messages = await loop.get_messages(sid)
    assert result.status == "degraded" and len(fake_server.requests) == 2
    assert result.final_text.startswith("[degraded: LLM provider error — LLMProviderError:")
    assert "HTTP 400: messages: roles must alternate" in result.final_text
    assert not recorder.of(AgentEventType.LLM_RETRY_ATTEMPTED)
    (degraded,) = recorder.of(AgentEventType.LLM_DEGRADED)
    assert (degraded.payload["reason"], degraded.payload["attempts"]) == ("provider_error", 1)
    assert after.status == "completed" and roles(messages) == ["user", "assistant", "user", "assistant"]


async def test_exhausted_retries_degrade_with_the_attempts(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.inject_fault(Fault("http_error", status=503, count=3))
    bus = AgentEventBus()
    recorder = Recorder(bus)
    async with loop_over(fake_server, provider, tmp_path, config=AgentLoopConfig(retry_policy=FAST_RETRY),
                         bus=bus) as loop:
        sid = await loop.new_session()
        result = await loop.send("hello", sid)
        assert (await loop.get_pending(sid)) is None
        assert (await loop.send("again", sid)).status == "completed"
    assert result.status == "degraded" and "HTTP 503" in result.final_text
    assert len(recorder.of(AgentEventType.LLM_RETRY_ATTEMPTED)) == 2
    (degraded,) = recorder.of(AgentEventType.LLM_DEGRADED)
    assert (degraded.payload["reason"], degraded.payload["attempts"]) == ("retry_exhausted", 3)


async def test_with_retry_raises_errors_that_carry_the_attempts(fake_server: FakeLLMServer, provider: str) -> None:
    llm = create_llm_service_from_config(llm_config(fake_server, provider, timeout_s=0.2))
    request = LLMRequest.from_prompt(prompt="hi")
    fake_server.inject_fault(Fault("http_error", status=500, count=3))
    with pytest.raises(LLMRetryExhausted) as exhausted:
        await with_retry(lambda: llm.complete(request), policy=FAST_RETRY)
    assert exhausted.value.attempts == 3 and "HTTP 500" in str(exhausted.value.last_error)
    fake_server.inject_fault(Fault("slow", delay_s=1.0, count=5))
    policy = LLMRetryPolicy(max_attempts=5, backoff_initial=0.01, total_timeout=0.5)
    with pytest.raises(LLMTimeout) as timeout:
        await with_retry(lambda: llm.complete(request), policy=policy)
    assert timeout.value.attempts >= 2 and timeout.value.total_timeout == 0.5
    await llm.close()


async def test_a_response_slower_than_the_timeout_is_retried_then_degrades(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.inject_fault(Fault("slow", delay_s=1.0, count=3))
    async with loop_over(fake_server, provider, tmp_path, config=AgentLoopConfig(retry_policy=FAST_RETRY),
                         timeout_s=0.2) as loop:
        sid = await loop.new_session()
        result = await loop.send("hello", sid)
    assert result.status == "degraded" and "did not answer within timeout_s=0.2" in result.final_text
    assert len(fake_server.requests) == 3


async def test_a_rejected_model_name_degrades_without_retries(tmp_path: Path, provider: str) -> None:
    with FakeLLMServer(accepted_models={"real-model"}) as server:
        async with loop_over(server, provider, tmp_path, config=AgentLoopConfig(retry_policy=FAST_RETRY)) as loop:
            sid = await loop.new_session()
            result = await loop.send("hello", sid)
        assert len(server.requests) == 1
    assert result.status == "degraded" and "HTTP 404" in result.final_text
    assert "'fake-model' does not exist" in result.final_text


async def test_malformed_tool_arguments_become_a_tool_result(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.inject_fault(Fault("malformed_tool_json"))
    async with loop_over(fake_server, provider, tmp_path, tools=registry()) as loop:
        sid = await loop.new_session()
        result = await loop.send("call math_add a=1 b=2", sid)
        messages = await loop.get_messages(sid)
    assert result.status == "completed" and result.tool_calls == 0
    assert roles(messages) == ["user", "assistant", "tool", "assistant"]
    assert messages[2]["content"].startswith("Error:") and "JSON" in messages[2]["content"]
    assert "math_add: Error:" in result.final_text  # the model saw the error


async def test_an_unknown_tool_name_becomes_a_tool_result(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.add_rule(Rule("delete", tool_calls=[("rm_rf", {"path": "/"})]))
    async with loop_over(fake_server, provider, tmp_path, tools=registry()) as loop:
        sid = await loop.new_session()
        result = await loop.send("delete everything", sid)
        messages = await loop.get_messages(sid)
    assert result.status == "completed" and result.tool_calls == 0
    assert messages[2]["content"] == "Error: unknown tool 'rm_rf'"
    assert (await loop_pending_free(messages))


async def loop_pending_free(messages: list[dict[str, object]]) -> bool:
    """Every tool call in the history has its result."""
    calls = {c["id"] for m in messages for c in m.get("tool_calls") or ()}  # type: ignore[attr-defined]
    results = {m.get("tool_call_id") for m in messages if m["role"] == "tool"}
    return calls == results
