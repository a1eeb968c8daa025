"""AgentLoopConfig: contract defaults, frozen keyword-only values, every problem reported at once."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from power_loop import AgentLoopConfig, InvalidArgumentError, LLMRetryPolicy

# API.md §3; fields not (yet) defined on the class are skipped, never invented here.
CONTRACT_DEFAULTS: dict[str, Any] = {
    "system_prompt": None,
    "max_rounds": 24,
    "temperature": 0.0,
    "max_tokens": 8000,
    "context_budget_tokens": None,
    "model": None,
    "response_format": None,
    "output_schema": None,
    "max_tokens_per_run": None,
    "fold_timeout_s": 120.0,
    "migrate_history_on_switch": True,
    "repair_corrupt_history": False,
    "retry_policy": None,
    "lease_wait_s": 30.0,
    "memory": None,
    "memory_budget_tokens": 1500,
    "notes_policy": None,
    "skills_dir": None,
    "inject_tool_descriptions": True,
    "tool_catalog_header": "# Available Tools",
}

FIELDS = {f.name for f in dataclasses.fields(AgentLoopConfig)}

INVALID: list[tuple[str, Any]] = [
    ("system_prompt", 42),
    ("max_rounds", 0),
    ("max_rounds", -3),
    ("max_rounds", 2.5),
    ("max_rounds", True),
    ("max_rounds", "24"),
    ("temperature", -0.1),
    ("temperature", 2.5),
    ("temperature", math.nan),
    ("temperature", "hot"),
    ("temperature", True),
    ("max_tokens", 0),
    ("max_tokens", -1),
    ("max_tokens", 10.5),
    ("context_budget_tokens", 0),
    ("context_budget_tokens", "1000"),
    ("max_tokens_per_run", 0),
    ("max_tokens_per_run", 1.5),
    ("model", 123),
    ("response_format", "json"),
    ("output_schema", {"name": "answer"}),
    ("retry_policy", {"max_attempts": 3}),
    ("lease_wait_s", -1.0),
    ("lease_wait_s", None),
    ("lease_wait_s", math.nan),
    ("inject_tool_descriptions", "yes"),
    ("tool_catalog_header", None),
    ("tool_timeout_s", 0),
    ("tool_timeout_s", math.nan),
    ("max_tool_output_chars", 10),
    ("max_parallel_tool_calls", 0),
    ("stream", "auto"),
    ("tool_choice", 5),
    ("tool_choice", ""),
    ("round_limit_note", None),
    ("round_limit_note", "used {rounds} rounds"),
]


def test_defaults_match_the_contract_for_every_field_that_exists() -> None:
    config = AgentLoopConfig()
    checked = {name for name in CONTRACT_DEFAULTS if name in FIELDS}
    assert {"max_rounds", "temperature", "max_tokens", "lease_wait_s"} <= checked
    for name in checked:
        assert getattr(config, name) == CONTRACT_DEFAULTS[name], name


def test_the_default_round_limit_note_formats_with_max_rounds() -> None:
    note = AgentLoopConfig(max_rounds=3).round_limit_note.format(max_rounds=3)
    assert "3" in note


def test_config_is_frozen() -> None:
    config = AgentLoopConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_rounds = 5  # type: ignore[misc]  # the point of the test


def test_config_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        AgentLoopConfig("a prompt")  # type: ignore[call-arg]  # the point of the test


@pytest.mark.parametrize(("field", "value"), INVALID, ids=[f"{f}={v!r}" for f, v in INVALID])
def test_an_invalid_value_raises_invalid_argument_naming_the_field(field: str, value: Any) -> None:
    if field not in FIELDS:
        pytest.skip(f"{field} is not a field yet")
    with pytest.raises(InvalidArgumentError) as info:
        AgentLoopConfig(**{field: value})
    assert info.value.code == "invalid_argument"
    assert isinstance(info.value, ValueError)
    assert field in str(info.value)


def test_every_problem_is_reported_in_one_message() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        AgentLoopConfig(max_rounds=0, temperature=9.0, max_tokens=-5, lease_wait_s=-1.0,
                        max_parallel_tool_calls=0)
    message = str(info.value)
    for name in ("max_rounds", "temperature", "max_tokens", "lease_wait_s", "max_parallel_tool_calls"):
        assert name in message
    assert "0" in message and "9.0" in message and "-5" in message  # the offending values


def test_output_schema_and_response_format_together_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="output_schema or response_format"):
        AgentLoopConfig(output_schema={"name": "a", "schema": {"type": "object"}},
                        response_format={"type": "json_object"})


@pytest.mark.parametrize("overrides", [
    {"temperature": None}, {"temperature": 0}, {"temperature": 2.0}, {"max_tokens": None},
    {"max_tokens": 1}, {"context_budget_tokens": 100_000}, {"max_tokens_per_run": 1},
    {"lease_wait_s": 0}, {"lease_wait_s": math.inf}, {"tool_timeout_s": None}, {"tool_timeout_s": 0.5},
    {"max_rounds": 1}, {"system_prompt": ""}, {"model": "gpt-x"}, {"stream": False},
    {"tool_choice": "required"}, {"tool_choice": {"type": "function", "function": {"name": "bash"}}},
    {"response_format": {"type": "json_object"}},
    {"retry_policy": LLMRetryPolicy(max_attempts=1)}, {"max_tool_output_chars": 100},
    {"round_limit_note": "stop after {max_rounds}"}, {"round_limit_note": "no placeholder"},
])
def test_boundary_and_alternative_values_are_accepted(overrides: dict[str, Any]) -> None:
    assert all(getattr(AgentLoopConfig(**overrides), k) == v for k, v in overrides.items())


def test_an_output_schema_dict_is_accepted() -> None:
    config = AgentLoopConfig(output_schema={"name": "answer", "schema": {"type": "object"}})
    assert config.output_schema is not None
    assert config.response_format is None


def test_with_changes_returns_a_validated_copy() -> None:
    base = AgentLoopConfig(system_prompt="P")
    changed = base.with_changes(max_rounds=3)
    assert (changed.max_rounds, changed.system_prompt, base.max_rounds) == (3, "P", 24)
    with pytest.raises(InvalidArgumentError, match="max_rounds"):
        base.with_changes(max_rounds=0)


def test_equal_settings_give_equal_configs() -> None:
    assert AgentLoopConfig(max_rounds=3) == AgentLoopConfig(max_rounds=3)
    assert AgentLoopConfig(max_rounds=3) != AgentLoopConfig(max_rounds=4)


@given(st.integers(-10**6, 10**6))
def test_max_rounds_is_accepted_exactly_when_at_least_one(max_rounds: int) -> None:
    if max_rounds >= 1:
        assert AgentLoopConfig(max_rounds=max_rounds).max_rounds == max_rounds
    else:
        with pytest.raises(InvalidArgumentError):
            AgentLoopConfig(max_rounds=max_rounds)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_temperature_is_accepted_exactly_within_zero_to_two(temperature: float) -> None:
    if 0.0 <= temperature <= 2.0:
        assert AgentLoopConfig(temperature=temperature).temperature == temperature
    else:
        with pytest.raises(InvalidArgumentError):
            AgentLoopConfig(temperature=temperature)
