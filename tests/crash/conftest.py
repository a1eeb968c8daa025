"""Fixtures of the crash tests: one fake LLM server per module, a per-test work directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_support import HangControl, Workdir

from power_loop.testing import FakeLLMServer


@pytest.fixture(scope="module")
def crash_server() -> Iterator[tuple[FakeLLMServer, HangControl]]:
    """A started ``FakeLLMServer`` (shared by the module's tests) with the hang rule."""
    hang = HangControl()
    server = FakeLLMServer(rules=[hang.rule()])
    server.start()
    try:
        yield server, hang
    finally:
        hang.release_all()
        server.stop()


@pytest.fixture
def workdir(tmp_path: Path, crash_server: tuple[FakeLLMServer, HangControl]) -> Iterator[Workdir]:
    """A directory for one test's database, logs and children; every child is killed at the end."""
    wd = Workdir(tmp_path, crash_server[0])
    try:
        yield wd
    finally:
        wd.close()
