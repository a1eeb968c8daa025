"""Shared by the examples: a real model from POWER_LOOP_* variables, else the fake server.

Not part of the library. With ``POWER_LOOP_API_KEY`` (or ``OPENAI_COMPAT_API_KEY``) set,
examples talk to that provider (``POWER_LOOP_PROVIDER`` picks ``openai`` or
``anthropic``); otherwise they start the bundled deterministic fake server in-process,
speaking the wire format of ``provider``, and say so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from power_loop import (
    LLMProviderConfig,
    LLMService,
    create_llm_service_from_config,
    create_llm_service_from_env,
)
from power_loop.testing import FakeLLMServer, Rule


def has_real_provider() -> bool:
    return bool(os.environ.get("POWER_LOOP_API_KEY") or os.environ.get("OPENAI_COMPAT_API_KEY"))


def fake_llm(server: FakeLLMServer, provider: str = "openai") -> LLMService:
    """A transport for ``provider`` talking to ``server``."""
    base_url = server.base_url if provider == "openai" else server.anthropic_base_url
    return create_llm_service_from_config(LLMProviderConfig(
        base_url=base_url, api_key="fake-key", model="fake-model", provider=provider))


@contextmanager
def example_llm(*, provider: str = "openai", rules: Sequence[Rule] = ()) -> Iterator[LLMService]:
    if has_real_provider():
        yield create_llm_service_from_env()
        return
    with FakeLLMServer(rules=rules) as server:
        where = server.base_url if provider == "openai" else server.anthropic_base_url
        print(f"(no POWER_LOOP_API_KEY set: using the bundled fake {provider} server at {where})")
        yield fake_llm(server, provider)
