"""DSNs and open_store arguments: every accepted form, and bad input that creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from power_loop.contracts.errors import StoreConfigError
from power_loop.store.dsn import (
    DEFAULT_DB_PATH,
    MAX_SPAWN_DEPTH,
    ParsedDSN,
    open_store,
    parse_dsn,
    validate_table_prefix,
)
from power_loop.store.rows import SchemaPolicy
from power_loop.store.schema import SCHEMA_VERSION


def listing(path: Path) -> list[Path]:
    return list(path.iterdir())


def test_constants() -> None:
    assert DEFAULT_DB_PATH == "./power_loop_sessions.db"
    assert MAX_SPAWN_DEPTH == 3


@pytest.mark.parametrize(
    ("dsn", "path"),
    [
        (":memory:", ":memory:"),
        ("sessions.db", "sessions.db"),
        ("./data/app.db", "./data/app.db"),
        ("/var/lib/app.db", "/var/lib/app.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite:///rel.db", "rel.db"),
        ("sqlite:///dir/rel.db", "dir/rel.db"),
        ("sqlite:////abs/app.db", "/abs/app.db"),
        ("sqlite+pysqlite:///rel.db", "rel.db"),
        ("SQLITE:///rel.db", "rel.db"),
    ],
)
def test_sqlite_forms(dsn: str, path: str) -> None:
    parsed = parse_dsn(dsn)
    assert parsed.backend == "sqlite"
    assert parsed.path == path
    assert parsed.is_memory == (path == ":memory:")


@pytest.mark.parametrize(
    ("dsn", "backend", "url", "driver"),
    [
        ("postgresql://u:secret@db:5432/app", "postgres", "postgresql://u:secret@db:5432/app", None),
        ("postgres://u:secret@db/app", "postgres", "postgresql://u:secret@db/app", None),
        ("postgresql+asyncpg://u:secret@db/app", "postgres", "postgresql://u:secret@db/app", "asyncpg"),
        ("mysql://u:secret@db:3306/app", "mysql", "mysql://u:secret@db:3306/app", None),
        ("mysql+aiomysql://u:secret@db/app", "mysql", "mysql://u:secret@db/app", "aiomysql"),
        ("mariadb://u:secret@db/app", "mysql", "mysql://u:secret@db/app", None),
    ],
)
def test_server_forms(dsn: str, backend: str, url: str, driver: str | None) -> None:
    parsed = parse_dsn(dsn)
    assert (parsed.backend, parsed.url, parsed.driver) == (backend, url, driver)
    assert "secret" not in repr(parsed)
    assert "secret" not in parsed.redacted


@pytest.mark.parametrize(
    ("dsn", "fragment"),
    [
        ("oracle://u:p@h/db", "unsupported DSN scheme 'oracle'"),
        ("http://example.com/x.db", "unsupported DSN scheme 'http'"),
        ("", "non-empty"),
        ("sqlite://host/x.db", "names a host"),
        ("sqlite:///x.db?mode=ro", "no query parameters"),
        ("sqlite:///", "has no path"),
    ],
)
def test_bad_dsns_are_config_errors(dsn: str, fragment: str) -> None:
    with pytest.raises(StoreConfigError) as info:
        parse_dsn(dsn)
    assert info.value.code == "store.config_invalid"
    assert fragment in str(info.value)
    if "scheme" in fragment:
        assert "postgresql://" in str(info.value) and "sqlite:///" in str(info.value)


@pytest.mark.parametrize("prefix", ["", "pl_", "_", "A9_z", "x" * 32])
def test_valid_prefixes(prefix: str) -> None:
    assert validate_table_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["x;drop", "9pl_", "pl-", "x" * 33, "a b", "é_"])
def test_invalid_prefixes(prefix: str) -> None:
    with pytest.raises(StoreConfigError, match="is not an identifier: use letters, digits and '_'") as info:
        validate_table_prefix(prefix)
    assert info.value.code == "store.config_invalid"


@pytest.mark.parametrize(
    "dsn", ["sqlite:///rel.db", "plain.db", "./sub/../plain2.db"],
)
async def test_relative_sqlite_dsns_open_under_the_working_directory(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    async with await open_store(dsn) as store:
        await store.create_session(session_id="here")
    expected = tmp_path / parse_dsn(dsn).path
    assert expected.exists()
    async with await open_store(str(expected), schema="verify") as again:
        assert await again.get_session("here") is not None


async def test_absolute_sqlite_url(tmp_path: Path) -> None:
    target = tmp_path / "abs.db"
    async with await open_store(f"sqlite:///{target}") as store:  # sqlite:////tmp/... : four slashes
        await store.create_session(session_id="abs")
    assert target.exists()


@pytest.mark.parametrize("dsn", [":memory:", "sqlite://"])
async def test_memory_dsns(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with await open_store(dsn) as store:
        await store.create_session(session_id="m")
        assert await store.get_session("m") is not None
    assert listing(tmp_path) == []


async def test_default_dsn_is_memory() -> None:
    async with await open_store() as store:
        assert store.dialect_name == "sqlite"
        assert store.table_prefix == "pl_"
        assert store.max_spawn_depth == 3


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"table_prefix": "x;drop"}, "table prefix 'x;drop' is not an identifier"),
        ({"table_prefix": "1abc"}, "not starting with a digit"),
        ({"dsn": "oracle://h/db"}, "unsupported DSN scheme 'oracle'"),
        ({"schema": "sometimes"}, "schema policy 'sometimes' is unknown"),
        ({"max_spawn_depth": -1}, "max_spawn_depth must be an int >= 0"),
    ],
)
async def test_bad_arguments_raise_and_create_nothing(
    kwargs: dict[str, object], fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args: dict[str, object] = {"dsn": str(tmp_path / "never.db"), **kwargs}
    with pytest.raises(StoreConfigError) as info:
        await open_store(**args)  # type: ignore[arg-type]
    assert info.value.code == "store.config_invalid"
    assert fragment in str(info.value)
    assert listing(tmp_path) == []


async def test_every_bad_argument_is_named_at_once(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError) as info:
        await open_store("ftp://x", table_prefix="a-b", schema="nope", max_spawn_depth=-2)
    message = str(info.value)
    for fragment in ("'ftp'", "'a-b'", "'nope'", "max_spawn_depth"):
        assert fragment in message


@pytest.mark.parametrize("schema", ["auto_create", "AUTO_CREATE", SchemaPolicy.AUTO_CREATE, None])
async def test_schema_policy_spellings(schema: SchemaPolicy | str | None) -> None:
    async with await open_store(":memory:", schema=schema) as store:
        assert store.schema_version == SCHEMA_VERSION


async def test_max_spawn_depth_is_passed_through() -> None:
    async with await open_store(max_spawn_depth=5) as store:
        assert store.max_spawn_depth == 5


def test_parsed_dsn_is_a_frozen_value() -> None:
    parsed = parse_dsn("x.db")
    assert parsed == ParsedDSN(backend="sqlite", path="x.db")
    with pytest.raises(AttributeError):
        parsed.path = "y.db"  # type: ignore[misc]
