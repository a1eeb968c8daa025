"""LLMProviderConfig, from_env and the service factories."""

from __future__ import annotations

import importlib.util
from dataclasses import FrozenInstanceError

import pytest

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.llm.config import (
    LLMProviderConfig,
    create_llm_service_from_config,
    create_llm_service_from_env,
)
from power_loop.llm.contract import LLMRequest, LLMService
from power_loop.llm.echo import EchoLLMService
from power_loop.llm.transports.openai import OpenAICompatLLMService

REQUIRED = {
    "POWER_LOOP_BASE_URL": "http://primary/v1",
    "POWER_LOOP_API_KEY": "sk-primary",
    "POWER_LOOP_MODEL": "primary-model",
}


def test_defaults_and_secret_repr() -> None:
    cfg = LLMProviderConfig(base_url="http://h/v1", api_key="sk-secret", model="m")
    assert (cfg.provider, cfg.timeout_s, cfg.max_tokens, cfg.temperature, cfg.max_retries, cfg.extra) == (
        "openai",
        180.0,
        8000,
        0.0,
        3,
        {},
    )
    assert "sk-secret" not in repr(cfg)
    with pytest.raises(FrozenInstanceError):
        cfg.model = "x"  # type: ignore[misc]


def test_invalid_values_are_all_reported() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        LLMProviderConfig(base_url="", api_key="", model=" ", timeout_s=0, max_retries=-1)
    message = str(info.value)
    assert "model is empty" in message and "timeout_s must be > 0" in message and "max_retries" in message


def test_provider_aliases_are_canonical() -> None:
    for alias, canonical in [
        ("OpenAI-Compatible", "openai"),
        ("openai_compatible", "openai"),
        ("claude", "anthropic"),
        ("dashscope-anthropic", "anthropic"),
        ("stub", "echo"),
    ]:
        assert LLMProviderConfig(base_url="u", api_key="k", model="m", provider=alias).provider == canonical
    with pytest.raises(InvalidArgumentError, match="unknown provider 'gemini'"):
        LLMProviderConfig(base_url="u", api_key="k", model="m", provider="gemini")
    assert LLMProviderConfig(base_url="", api_key="", model="", provider="echo").model == ""


def test_from_env_reads_the_prefix_first_then_the_fallback() -> None:
    env = {
        **REQUIRED,
        "POWER_LOOP_MODEL": "",
        "OPENAI_COMPAT_MODEL": "legacy-model",
        "OPENAI_COMPAT_BASE_URL": "http://legacy/v1",
        "OPENAI_COMPAT_TIMEOUT_S": "12.5",
        "POWER_LOOP_MAX_TOKENS": "256",
        "POWER_LOOP_TEMPERATURE": "0.7",
        "POWER_LOOP_MAX_RETRIES": "0",
    }
    cfg = LLMProviderConfig.from_env(env=env)
    assert (cfg.base_url, cfg.api_key, cfg.model) == ("http://primary/v1", "sk-primary", "legacy-model")
    assert (cfg.timeout_s, cfg.max_tokens, cfg.temperature, cfg.max_retries) == (12.5, 256, 0.7, 0)


def test_from_env_custom_prefixes() -> None:
    env = {"APP_LLM_BASE_URL": "u", "APP_LLM_API_KEY": "k", "APP_LLM_MODEL": "m", "OLD_TEMPERATURE": "none"}
    cfg = LLMProviderConfig.from_env(prefix="APP_LLM", fallback_prefix="OLD", env=env)
    assert (cfg.model, cfg.temperature) == ("m", None)
    with pytest.raises(InvalidArgumentError, match=r"POWER_LOOP_MODEL is not set"):
        LLMProviderConfig.from_env(fallback_prefix=None, env={**REQUIRED, "POWER_LOOP_MODEL": ""})


def test_missing_variables_are_named_exactly() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        LLMProviderConfig.from_env(env={"POWER_LOOP_API_KEY": "k"})
    assert str(info.value) == (
        "cannot configure the LLM from the environment: POWER_LOOP_BASE_URL (or OPENAI_COMPAT_BASE_URL)"
        " and POWER_LOOP_MODEL (or OPENAI_COMPAT_MODEL) are not set"
    )
    with pytest.raises(
        InvalidArgumentError, match=r"^.*POWER_LOOP_MODEL \(or OPENAI_COMPAT_MODEL\) is not set$"
    ):
        LLMProviderConfig.from_env(env={**REQUIRED, "POWER_LOOP_MODEL": "  "})


def test_bad_values_name_their_variable() -> None:
    env = {
        **REQUIRED,
        "POWER_LOOP_TIMEOUT_S": "soon",
        "OPENAI_COMPAT_SUPPORTS_STREAM": "maybe",
        "POWER_LOOP_PROVIDER": "gemini",
    }
    with pytest.raises(InvalidArgumentError) as info:
        LLMProviderConfig.from_env(env=env)
    message = str(info.value)
    assert "POWER_LOOP_TIMEOUT_S (or OPENAI_COMPAT_TIMEOUT_S)='soon' is not a valid float" in message
    assert "POWER_LOOP_SUPPORTS_STREAM (or OPENAI_COMPAT_SUPPORTS_STREAM)='maybe' is not a boolean" in message
    assert "POWER_LOOP_PROVIDER (or OPENAI_COMPAT_PROVIDER)='gemini' is not a known provider" in message


def test_capabilities_echo_settings_and_debug_go_to_extra() -> None:
    env = {
        "POWER_LOOP_PROVIDER": "stub",
        "POWER_LOOP_ECHO_REPLY": "pong",
        "POWER_LOOP_ECHO_SLEEP": "0.01",
        "POWER_LOOP_SUPPORTS_STREAM": "0",
        "OPENAI_COMPAT_SUPPORTS_TOOLS": "true",
        "POWER_LOOP_LLM_DEBUG": "1",
    }
    cfg = LLMProviderConfig.from_env(env=env)
    assert cfg.provider == "echo"
    assert cfg.extra == {
        "echo_reply": "pong",
        "echo_sleep_s": 0.01,
        "supports_stream": False,
        "supports_tools": True,
        "llm_debug": True,
    }


async def test_echo_service_answers_offline() -> None:
    service = create_llm_service_from_config(LLMProviderConfig.from_env(env={"POWER_LOOP_PROVIDER": "echo"}))
    assert isinstance(service, EchoLLMService) and isinstance(service, LLMService)
    deltas: list[str] = []
    response = await service.complete(
        LLMRequest.from_prompt(prompt="hello world"), on_chunk_delta_text=deltas.append
    )
    assert response.content_text == "Echo: hello world" == "".join(deltas)
    assert response.token_usage.total > 0
    fixed = EchoLLMService.from_config(
        LLMProviderConfig(
            base_url="",
            api_key="",
            model="",
            provider="echo",
            extra={"echo_reply": "pong", "echo_sleep_s": 0.001},
        )
    )
    assert (await fixed.complete(LLMRequest.from_prompt(prompt="x"))).content_text == "pong"
    chunks = [c async for c in fixed.stream(LLMRequest.from_prompt(prompt="x"))]
    assert chunks[-1].is_final and "".join(c.delta_text for c in chunks) == "pong"


def test_openai_provider_builds_the_openai_transport() -> None:
    cfg = LLMProviderConfig.from_env(env={**REQUIRED, "POWER_LOOP_MAX_RETRIES": "5"})
    service = create_llm_service_from_config(cfg)
    assert isinstance(service, OpenAICompatLLMService) and isinstance(service, LLMService)
    assert service.retry_policy.max_attempts == 6 and service.retry_policy.total_timeout is None


@pytest.mark.skipif(
    importlib.util.find_spec("power_loop.llm.transports.anthropic") is not None,
    reason="the Anthropic transport exists",
)
def test_anthropic_without_a_transport_is_a_clean_error() -> None:
    cfg = LLMProviderConfig(base_url="u", api_key="k", model="m", provider="claude")
    with pytest.raises(InvalidArgumentError, match="provider 'anthropic' has no transport"):
        create_llm_service_from_config(cfg)


def test_create_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTLLM_PROVIDER", "echo")
    assert isinstance(create_llm_service_from_env(prefix="TESTLLM", fallback_prefix=None), EchoLLMService)
    monkeypatch.setenv("TESTLLM_PROVIDER", "")
    with pytest.raises(
        InvalidArgumentError, match="TESTLLM_BASE_URL, TESTLLM_API_KEY and TESTLLM_MODEL are not set"
    ):
        create_llm_service_from_env(prefix="TESTLLM", fallback_prefix=None)
