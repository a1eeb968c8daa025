"""Backend targets for the store conformance suite: where each test's store lives.

``sqlite-file`` (a WAL file in tmp_path) and ``sqlite-memory`` always run. ``postgres``
and ``mysql`` run when ``POWER_LOOP_TEST_PG_DSN`` / ``POWER_LOOP_TEST_MYSQL_DSN`` name a
server (skipped with a reason otherwise); a named server that is down FAILS the tests
that need it, never skips them. There, every store gets its own table prefix, dropped
afterwards, so tests do not interfere and the shared databases are left clean.
"""

from __future__ import annotations

import importlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from power_loop.contracts.errors import StoreConnectError
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
    prefixes: list[str] = field(default_factory=list)
    """Every server prefix handed out, dropped by ``cleanup``."""
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
        prefix = f"t{uuid.uuid4().hex[:10]}_{base}"
        self.prefixes.append(prefix)
        return prefix

    async def cleanup(self) -> None:
        """Drop every table under every prefix this target handed out (servers only)."""
        if self.server_dsn is not None and self.prefixes:
            with suppress(StoreConnectError):  # the server is down: the test already failed saying so
                await drop_tables(self.server_dsn, self.prefixes)
            self.prefixes.clear()


def make_backend(name: str, tmp_path: Path) -> Backend:
    """The target called ``name``; skips the test when a server backend is unavailable."""
    if name in SERVER_ENV:
        env = SERVER_ENV[name]
        dsn = os.environ.get(env)
        if not dsn:
            pytest.skip(f"{name} backend: set {env} to run the conformance suite against a server")
        return Backend(name=name, tmp_path=tmp_path, server_dsn=dsn)
    return Backend(name=name, tmp_path=tmp_path)


async def drop_prefix(store: SessionStore) -> None:
    """Drop every table under the store's prefix (server cleanup; fixtures only)."""
    names = [f"{store.table_prefix}{t.name}" for t in TABLES] + [f"{store.table_prefix}{VERSION_TABLE}"]
    await store.db.write([Stmt(f"DROP TABLE IF EXISTS {name}") for name in names])


_CATALOG = {
    "postgres": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
    "mysql": "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
}


async def drop_tables(dsn: str, prefixes: list[str]) -> None:
    """Drop every table whose name starts with one of ``prefixes`` (found in the catalog)."""
    async with raw_database(dsn) as db:
        names = [str(r[0]) for r in await db.fetchall(_CATALOG[db.dialect.name])]
        doomed = [n for n in names if any(n.startswith(p) for p in prefixes)]
        for name in doomed:
            await db.write([Stmt(f"DROP TABLE IF EXISTS {name}")])


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
