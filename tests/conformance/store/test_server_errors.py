"""Bad input against server backends: clear errors, no hang, no password echoed, nothing changed."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from store_targets import SERVER_ENV, drop_tables, raw_database

from power_loop.contracts.errors import (
    MissingExtraError,
    StoreConfigError,
    StoreConnectError,
    StoreSchemaError,
)
from power_loop.store.dsn import open_store, parse_dsn

SECRET = "s3cr3t-Pa55"
SERVERS = ("postgres", "mysql")
SCHEMES = {"postgres": "postgresql", "mysql": "mysql"}


def server_dsn(name: str) -> str:
    dsn = os.environ.get(SERVER_ENV[name])
    if not dsn:
        pytest.skip(f"{name}: set {SERVER_ENV[name]} to run against a server")
    return dsn


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    user = parts.username or "root"
    host = parts.hostname or "localhost"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def assert_secret_hidden(exc: BaseException) -> None:
    chain: BaseException | None = exc
    while chain is not None:
        assert SECRET not in str(chain) and SECRET not in repr(chain)
        chain = chain.__cause__


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A local port that accepts connections and never says a word (a hung server)."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("name", SERVERS)
async def test_an_unreachable_server_names_host_and_port_quickly(name: str) -> None:
    started = time.monotonic()
    with pytest.raises(StoreConnectError) as info:
        await open_store(f"{SCHEMES[name]}://app:{SECRET}@127.0.0.1:1/db")
    assert time.monotonic() - started < 10
    assert info.value.code == "store.connect_failed"
    assert "127.0.0.1:1" in str(info.value)
    assert_secret_hidden(info.value)


@pytest.mark.parametrize("name", SERVERS)
async def test_a_silent_server_fails_within_the_connect_timeout(name: str, silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(StoreConnectError) as info:
        await open_store(f"{SCHEMES[name]}://app:{SECRET}@127.0.0.1:{silent_port}/db?connect_timeout=0.5")
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{silent_port}" in str(info.value)
    assert_secret_hidden(info.value)


@pytest.mark.parametrize("name", SERVERS)
async def test_a_wrong_password_is_an_authentication_error(name: str) -> None:
    dsn = with_password(server_dsn(name), SECRET)
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    try:
        store = await open_store(dsn, table_prefix=prefix, schema="verify")
    except StoreConnectError as exc:
        user = urlsplit(dsn).username
        assert f"authentication failed for user '{user}'" in str(exc)
        assert_secret_hidden(exc)
        return
    except StoreSchemaError:
        pass  # connected (VERIFY created nothing)
    else:
        await store.close()
    pytest.skip(f"the {name} server accepted a wrong password (trust authentication): nothing to refuse")


@pytest.mark.parametrize("name", SERVERS)
async def test_an_unknown_user_is_refused_by_name(name: str) -> None:
    parts = urlsplit(server_dsn(name))
    netloc = f"no_such_user_pl:{SECRET}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    with pytest.raises(StoreConnectError, match="user 'no_such_user_pl'") as info:
        await open_store(urlunsplit(parts._replace(netloc=netloc)))
    assert f"{parts.hostname}:" in str(info.value)
    assert_secret_hidden(info.value)


@pytest.mark.parametrize("name", SERVERS)
async def test_an_unknown_database_is_named(name: str) -> None:
    parts = urlsplit(server_dsn(name))
    dsn = urlunsplit(parts._replace(path="/no_such_db_power_loop"))
    with pytest.raises(StoreConnectError, match="'no_such_db_power_loop' does not exist"):
        await open_store(dsn)


@pytest.mark.parametrize(("dsn", "fragment"), [
    (f"postgresql://u:{SECRET}@db:notaport/app", "port in 'db:notaport' is not a number"),
    (f"mysql://u:{SECRET}@db:99999/app", "is not a number in 1..65535"),
    (f"mysql://u:{SECRET}@db:3306", "must name a database"),
    (f"mysql://u:{SECRET}@db/app?sslmode=x", "unsupported MySQL DSN option(s) sslmode"),
    (f"postgresql://u:{SECRET}@db/app?connect_timeout=soon", "connect_timeout='soon'"),
    (f"postgresql://u:{SECRET}@db/app?pool_min=5&pool_max=2", "pool_max=2 must be >= 1 and >= pool_min=5"),
])
async def test_malformed_server_dsns_are_refused_before_connecting(dsn: str, fragment: str) -> None:
    with pytest.raises(StoreConfigError) as info:
        await open_store(dsn)
    assert fragment in str(info.value)
    assert_secret_hidden(info.value)
    with pytest.raises(StoreConfigError):
        parse_dsn(dsn)


@pytest.mark.parametrize(("name", "module", "extra"), [("postgres", "asyncpg", "postgres"),
                                                       ("mysql", "aiomysql", "mysql")])
async def test_a_missing_driver_names_the_extra(name: str, module: str, extra: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what `import` sees when it is not installed
    with pytest.raises(MissingExtraError) as info:
        await open_store(f"{SCHEMES[name]}://u:{SECRET}@127.0.0.1:1/db")
    assert info.value.extra == extra and info.value.code == "extra.missing"
    assert f"pip install 'power-loop[{extra}]'" in str(info.value)


@pytest.mark.parametrize("name", SERVERS)
async def test_a_prefix_with_sql_in_it_touches_nothing(name: str) -> None:
    dsn = server_dsn(name)
    before = await catalog(dsn)
    for prefix in ("x; DROP TABLE pl_sessions; --", "pl_' OR '1'='1", "a b"):
        with pytest.raises(StoreConfigError, match="is not an identifier"):
            await open_store(dsn, table_prefix=prefix)
    assert await catalog(dsn) == before


async def catalog(dsn: str) -> list[str]:
    async with raw_database(dsn) as db:
        sql = ("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
               if db.dialect.name == "postgres"
               else "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        return sorted(str(r[0]) for r in await db.fetchall(sql))


@pytest.mark.parametrize("name", SERVERS)
async def test_a_server_store_never_shows_its_password(name: str) -> None:
    dsn = with_password(server_dsn(name), SECRET)
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    try:
        store = await open_store(dsn, table_prefix=prefix)
    except StoreConnectError as exc:
        assert_secret_hidden(exc)
        pytest.skip("the server checks passwords: see test_a_wrong_password_is_an_authentication_error")
    try:
        parsed = parse_dsn(dsn)
        texts = [repr(store), repr(store.db), repr(parsed), repr(getattr(store.db, "endpoint", None)),
                 parsed.redacted]
        assert all(SECRET not in text for text in texts)
    finally:
        await store.close()
        await drop_tables(server_dsn(name), [prefix])
