"""Fixtures of the store conformance suite: ``backend`` and ``store``, over every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_targets import BACKENDS, Backend, make_backend

from power_loop.store.dsn import open_store
from power_loop.store.session_store import SessionStore


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    target = make_backend(str(request.param), tmp_path)
    try:
        yield target
    finally:
        await target.cleanup()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SessionStore]:
    s = await open_store(backend.dsn(), table_prefix=backend.prefix())
    try:
        yield s
    finally:
        await s.close()
