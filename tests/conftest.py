"""Shared fixtures: a started fake LLM server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from power_loop.testing import FakeLLMServer


@pytest.fixture
def fake_server() -> Iterator[FakeLLMServer]:
    """A started ``FakeLLMServer`` with default rules, stopped after the test."""
    with FakeLLMServer() as server:
        yield server
