"""The PowerLoopError tree: frozen codes, bases, attributes, messages and pickling."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

import power_loop
from power_loop.contracts import errors as E

FROZEN_CODES = {
    "PowerLoopError": "power_loop.error",
    "InvalidArgumentError": "invalid_argument",
    "StoreConfigError": "store.config_invalid",
    "ToolDefinitionError": "tool.invalid_definition",
    "UsageError": "usage.invalid",
    "LoopClosedError": "loop.closed",
    "MissingExtraError": "extra.missing",
    "SessionNotFoundError": "session.not_found",
    "SessionPendingError": "session.pending",
    "SessionBusyError": "session.busy",
    "LLMProviderError": "llm.provider_error",
    "LLMTimeout": "llm.timeout",
    "LLMRetryExhausted": "llm.retry_exhausted",
    "CancellationRequested": "cancelled",
    "CompactionFailed": "compaction.failed",
    "ToolNotFound": "tool.not_found",
    "ToolValidationError": "tool.invalid_args",
    "AsyncToolInSyncContext": "tool.async_in_sync",
    "HumanInputRequired": "input.required",
    "SpecValidationError": "spec.invalid",
    "AgentSpecError": "spec.invalid",
    "WorkflowSpecError": "spec.invalid",
    "WorkflowRunError": "workflow.run_failed",
    "WorkerBootstrapError": "workflow.worker_bootstrap",
    "StructuredOutputError": "structured_output.invalid",
    "StoreSchemaError": "store.schema",
    "RuntimeEnvError": "runtime.env_missing",
    "NotesFullError": "notes.full",
    "BlackboardError": "blackboard.invalid",
    # Beyond API.md §9, already released with these codes:
    "StoreError": "store.error",
    "StoreConnectError": "store.connect_failed",
}

BASES: dict[str, tuple[type, ...]] = {
    "PowerLoopError": (Exception,),
    "InvalidArgumentError": (E.PowerLoopError, ValueError),
    "StoreConfigError": (E.InvalidArgumentError,),
    "ToolDefinitionError": (E.InvalidArgumentError,),
    "UsageError": (E.PowerLoopError, RuntimeError),
    "LoopClosedError": (E.UsageError,),
    "MissingExtraError": (E.PowerLoopError, ImportError),
    "SessionNotFoundError": (E.PowerLoopError,),
    "SessionPendingError": (E.PowerLoopError,),
    "SessionBusyError": (E.PowerLoopError,),
    "LLMProviderError": (E.PowerLoopError,),
    "LLMTimeout": (E.PowerLoopError,),
    "LLMRetryExhausted": (E.PowerLoopError,),
    "CancellationRequested": (E.PowerLoopError,),
    "CompactionFailed": (E.PowerLoopError,),
    "ToolNotFound": (E.PowerLoopError,),
    "ToolValidationError": (E.PowerLoopError,),
    "AsyncToolInSyncContext": (E.PowerLoopError, TypeError),
    "HumanInputRequired": (E.PowerLoopError,),
    "SpecValidationError": (E.PowerLoopError, ValueError),
    "AgentSpecError": (E.SpecValidationError,),
    "WorkflowSpecError": (E.SpecValidationError,),
    "WorkflowRunError": (E.PowerLoopError, RuntimeError),
    "WorkerBootstrapError": (E.PowerLoopError,),
    "StructuredOutputError": (E.PowerLoopError, ValueError),
    "StoreSchemaError": (E.PowerLoopError, RuntimeError),
    "StoreError": (E.PowerLoopError,),
    "StoreConnectError": (E.StoreError,),
    "RuntimeEnvError": (E.PowerLoopError, RuntimeError),
    "NotesFullError": (E.PowerLoopError, ValueError),
    "BlackboardError": (E.PowerLoopError, ValueError),
}


def sample(name: str) -> E.PowerLoopError:
    """One instance of each class, built the way the library raises it."""
    cls = getattr(E, name)
    builders: dict[str, Any] = {
        "MissingExtraError": lambda: cls("postgres", feature="PostgreSQL stores", module="asyncpg"),
        "SessionNotFoundError": lambda: cls("s-1"),
        "SessionPendingError": lambda: cls(
            "s-1", assistant_seq=7,
            pending_tool_calls=[
                {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]),
        "SessionBusyError": lambda: cls("s-1", holder="host:42", waited_s=30.0),
        "LLMProviderError": lambda: cls("rate limited", provider="openai", status_code=429, retryable=True,
                                        retry_after_s=2.0),
        "LLMTimeout": lambda: cls("too slow", elapsed=61.0, attempts=3, total_timeout=60.0),
        "LLMRetryExhausted": lambda: cls("gave up", attempts=3, last_error=ValueError("last")),
        "CancellationRequested": lambda: cls("user"),
        "ToolNotFound": lambda: cls("nope", known=["bash", "glob"]),
        "ToolValidationError": lambda: cls("bash", ["missing required parameter 'command'"]),
        "SpecValidationError": lambda: cls("bad spec", field="steps", problems=["a", "b"]),
        "AgentSpecError": lambda: cls("bad agent", field="model"),
        "WorkflowSpecError": lambda: cls("bad workflow", problems=["x"]),
        "StructuredOutputError": lambda: cls("not JSON", reason="parse", raw_text="{", detail={"pos": 1}),
        "StoreSchemaError": lambda: cls("schema missing",
                                        ddl=["CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)"]),
    }
    build = builders.get(name, lambda: cls(f"{name} happened"))
    error: E.PowerLoopError = build()
    return error


def test_the_pinned_table_covers_every_error_class() -> None:
    defined = {name for name, obj in vars(E).items()
               if isinstance(obj, type) and issubclass(obj, E.PowerLoopError)}
    assert defined == set(FROZEN_CODES)
    assert E.ERROR_CODES == FROZEN_CODES


@pytest.mark.parametrize("name", sorted(FROZEN_CODES))
def test_code_is_frozen_on_the_class_and_seen_by_instances(name: str) -> None:
    cls = getattr(E, name)
    assert cls.code == FROZEN_CODES[name]
    assert sample(name).code == FROZEN_CODES[name]


@pytest.mark.parametrize("name", sorted(BASES))
def test_bases_match_the_contract(name: str) -> None:
    cls = getattr(E, name)
    for base in BASES[name]:
        assert issubclass(cls, base), f"{name} must subclass {base.__name__}"
    assert issubclass(cls, E.PowerLoopError)
    assert isinstance(sample(name), BASES[name])


@pytest.mark.parametrize("name", sorted(FROZEN_CODES))
def test_every_error_is_importable_from_power_loop(name: str) -> None:
    assert getattr(power_loop, name) is getattr(E, name)


def test_missing_extra_error_names_the_extra_to_install() -> None:
    error = sample("MissingExtraError")
    assert isinstance(error, E.MissingExtraError)
    assert error.extra == "postgres"
    assert "pip install 'power-loop[postgres]'" in str(error)
    assert "asyncpg" in str(error)


def test_session_pending_error_names_every_way_out_and_carries_the_calls() -> None:
    error = sample("SessionPendingError")
    assert isinstance(error, E.SessionPendingError)
    message = str(error)
    for remedy in ("resume", "abort_pending", "heal_pending=True"):
        assert remedy in message
    assert "bash" in message and "'s-1'" in message
    assert error.session_id == "s-1" and error.assistant_seq == 7
    assert error.pending_tool_calls[0]["id"] == "c1"


def test_session_pending_error_for_interactions_only_says_so() -> None:
    error = E.SessionPendingError("s-2", assistant_seq=3, pending_tool_calls=[],
                                  pending_interactions=[{"interaction_id": "i1"}])
    message = str(error)
    assert "1 pending interaction" in message
    for remedy in ("resume", "abort_pending", "heal_pending=True"):
        assert remedy in message


def test_attributes_carry_the_offending_values() -> None:
    busy = sample("SessionBusyError")
    assert isinstance(busy, E.SessionBusyError)
    assert (busy.session_id, busy.holder) == ("s-1", "host:42")
    provider = sample("LLMProviderError")
    assert isinstance(provider, E.LLMProviderError)
    assert (provider.provider, provider.status_code, provider.retryable, provider.retry_after_s) == (
        "openai", 429, True, 2.0)
    timeout = sample("LLMTimeout")
    assert isinstance(timeout, E.LLMTimeout)
    assert (timeout.elapsed, timeout.attempts, timeout.total_timeout) == (61.0, 3, 60.0)
    exhausted = sample("LLMRetryExhausted")
    assert isinstance(exhausted, E.LLMRetryExhausted)
    assert exhausted.attempts == 3 and isinstance(exhausted.last_error, ValueError)
    assert sample("SessionNotFoundError").session_id == "s-1"  # type: ignore[attr-defined]
    assert sample("CancellationRequested").reason == "user"  # type: ignore[attr-defined]
    assert sample("ToolNotFound").tool_name == "nope"  # type: ignore[attr-defined]
    invalid = sample("ToolValidationError")
    assert isinstance(invalid, E.ToolValidationError)
    assert invalid.tool_name == "bash" and invalid.problems == ["missing required parameter 'command'"]
    assert "command" in str(invalid)
    spec = sample("SpecValidationError")
    assert isinstance(spec, E.SpecValidationError)
    assert spec.field == "steps" and spec.problems == ["a", "b"]
    assert E.SpecValidationError("only").problems == ["only"]
    structured = sample("StructuredOutputError")
    assert isinstance(structured, E.StructuredOutputError)
    assert (structured.reason, structured.raw_text, structured.detail) == ("parse", "{", {"pos": 1})


def test_tool_not_found_lists_the_registered_tools() -> None:
    assert "bash, glob" in str(sample("ToolNotFound"))


def test_store_schema_error_message_ends_with_the_provisioning_script() -> None:
    error = sample("StoreSchemaError")
    assert isinstance(error, E.StoreSchemaError)
    assert error.ddl == ["CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)"]
    assert str(error).startswith("schema missing")
    assert str(error).rstrip(";").endswith("CREATE TABLE b (y INT)")
    assert "CREATE TABLE a (x INT)" in str(error)


@pytest.mark.parametrize("name", sorted(FROZEN_CODES))
def test_every_error_survives_pickling_and_copying_with_its_attributes(name: str) -> None:
    error = sample(name)
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert clone.args == error.args
        assert clone.code == error.code
        assert {k: repr(v) for k, v in vars(clone).items()} == {k: repr(v) for k, v in vars(error).items()}
