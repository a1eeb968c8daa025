"""Backend targets for the store conformance suite: where each test's store lives.

``sqlite-file`` (a WAL file in tmp_path) and ``sqlite-memory`` always run. ``postgres``
and ``mysql`` run when ``POWER_LOOP_TEST_PG_DSN`` / ``POWER_LOOP_TEST_MYSQL_DSN`` name a
server (skipped with a reason otherwise, or while the backend module does not exist);
there, every store gets its own table prefix, dropped afterwards.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from power_loop.store.dsn import parse_dsn
from power_loop.store.port import Database, Stmt
from power_loop.store.schema import TABLES, VERSION_TABLE
from power_loop.store.session_store import SessionStore

BACKENDS = ("sqlite-file", "sqlite-memory", "postgres", "mysql")
SERVER_ENV = {"postgres": "POWER_LOOP_TEST_PG_DSN", "mysql": "POWER_LOOP_TEST_MYSQL_DSN"}


@dataclass(kw_only=True)
class Backend:
    """How to reach one backend from a test: fresh DSNs and prefixes on demand."""

    name: str
    tmp_path: Path
    server_dsn: str | None = None
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def is_server(self) -> bool:
        return self.server_dsn is not None

    @property
    def shares_database(self) -> bool:
        """Whether two ``open_store`` calls on ``dsn()`` reach the same database."""
        return self.name != "sqlite-memory"

    def dsn(self) -> str:
        """A DSN for a fresh database (servers: the shared one; isolate with ``prefix()``)."""
        if self.server_dsn is not None:
            return self.server_dsn
        if self.name == "sqlite-memory":
            return ":memory:"
        return str(self.tmp_path / f"store{next(self._counter)}.db")

    def prefix(self, base: str = "pl_") -> str:
        """A table prefix no other test uses on a shared server, else ``base``."""
        if self.server_dsn is None:
            return base
        return f"t{uuid.uuid4().hex[:10]}_{base}"


def make_backend(name: str, tmp_path: Path) -> Backend:
    """The target called ``name``; skips the test when a server backend is unavailable."""
    if name in SERVER_ENV:
        env = SERVER_ENV[name]
        dsn = os.environ.get(env)
        if not dsn:
            pytest.skip(f"{name} backend: set {env} to run the conformance suite against a server")
        if importlib.util.find_spec(f"power_loop.store.backends.{name}") is None:
            pytest.skip("backend not implemented yet")
        return Backend(name=name, tmp_path=tmp_path, server_dsn=dsn)
    return Backend(name=name, tmp_path=tmp_path)


async def drop_prefix(store: SessionStore) -> None:
    """Drop every table under the store's prefix (server cleanup; fixtures only)."""
    names = [f"{store.table_prefix}{t.name}" for t in TABLES] + [f"{store.table_prefix}{VERSION_TABLE}"]
    await store.db.write([Stmt(f"DROP TABLE IF EXISTS {name}") for name in names])


@asynccontextmanager
async def raw_database(dsn: str) -> AsyncIterator[Database]:
    """A bare ``Database`` on ``dsn``, no schema provisioning: what an operator's SQL
    client would be (applying a DDL script, tampering with a version stamp)."""
    parsed = parse_dsn(dsn)
    module = importlib.import_module(f"power_loop.store.backends.{parsed.backend}")
    db: Database = await module.connect(parsed)
    try:
        yield db
    finally:
        await db.close()
