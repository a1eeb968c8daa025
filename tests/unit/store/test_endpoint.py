"""Server endpoints: URL parsing, options, and a password that never shows."""

from __future__ import annotations

import pytest

from power_loop.contracts.errors import MissingExtraError, StoreConfigError
from power_loop.store.backends.endpoint import import_driver, parse_endpoint, redact


def test_a_full_postgres_url() -> None:
    ep = parse_endpoint("postgres", "postgresql://app:p%40ss@db.local:6543/main?sslmode=disable&pool_max=4")
    assert (ep.host, ep.port, ep.user, ep.password, ep.database) == ("db.local", 6543, "app", "p@ss", "main")
    assert ep.options == {"sslmode": "disable"} and (ep.pool_min, ep.pool_max) == (1, 4)
    assert ep.driver_url == "postgresql://app:p%40ss@db.local:6543/main?sslmode=disable"
    assert ep.address == "db.local:6543"
    assert "p@ss" not in repr(ep) and "p%40ss" not in repr(ep)
    assert ep.scrub("auth p@ss and p%40ss") == "auth *** and ***"


def test_defaults() -> None:
    pg = parse_endpoint("postgres", "postgresql:///main")
    assert (pg.host, pg.port, pg.user, pg.password) == ("localhost", 5432, None, None)
    assert pg.connect_timeout_s == 10.0
    my = parse_endpoint("mysql", "mysql://root@127.0.0.1/test?connect_timeout=2.5")
    assert (my.port, my.user, my.database, my.connect_timeout_s) == (3306, "root", "test", 2.5)


def test_every_problem_is_named_without_the_password() -> None:
    with pytest.raises(StoreConfigError) as info:
        parse_endpoint("mysql", "mysql://u:hunter2@h:x?ssl=1&pool_min=-1")
    message = str(info.value)
    fragments = ("port in 'h:x'", "must name a database", "unsupported MySQL DSN option(s) ssl", "pool_min")
    for fragment in fragments:
        assert fragment in message
    assert "hunter2" not in message


def test_safe_cause_drops_an_exception_that_would_leak() -> None:
    ep = parse_endpoint("postgres", "postgresql://u:hunter2@h/db")
    leaky, clean = ValueError("bad dsn postgresql://u:hunter2@h/db"), OSError("refused")
    assert ep.safe_cause(leaky) is None and ep.safe_cause(clean) is clean
    assert redact("mysql://u:hunter2@h:1/db") == "mysql://h:1/db"


def test_a_missing_driver_names_its_extra() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'power-loop\[postgres\]'") as info:
        import_driver("power_loop_no_such_driver", extra="postgres", feature="the PostgreSQL store")
    assert info.value.extra == "postgres"
