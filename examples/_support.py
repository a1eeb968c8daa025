"""Shared by the examples: a real model from POWER_LOOP_* variables, else the fake server.

Not part of the library. With ``POWER_LOOP_API_KEY`` (or ``OPENAI_COMPAT_API_KEY``) set,
examples talk to that provider; otherwise they start the bundled deterministic fake
OpenAI-compatible server in-process and say so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from power_loop import LLMProviderConfig, LLMService, create_llm_service_from_config, create_llm_service_from_env
from power_loop.testing import FakeLLMServer


@contextmanager
def example_llm() -> Iterator[LLMService]:
    if os.environ.get("POWER_LOOP_API_KEY") or os.environ.get("OPENAI_COMPAT_API_KEY"):
        yield create_llm_service_from_env()
        return
    with FakeLLMServer() as server:
        print(f"(no POWER_LOOP_API_KEY set: using the bundled fake server at {server.base_url})")
        yield create_llm_service_from_config(
            LLMProviderConfig(base_url=server.base_url, api_key="fake-key", model="fake-model"))
