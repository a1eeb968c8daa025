"""Server endpoints: a PostgreSQL/MySQL URL split into address, credentials and options.

Shared by the server backends and by ``parse_dsn`` (which validates a server DSN before
anything connects). Invariants: the password is never part of a message or a ``repr``
(``Endpoint.password`` is hidden, ``scrub`` removes it from driver text); a malformed
URL is a ``StoreConfigError`` naming the bad part; a driver that is not installed is a
``MissingExtraError`` naming the extra. No driver is imported here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from power_loop.contracts.errors import MissingExtraError, StoreConfigError

DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_POOL_MIN = 1
DEFAULT_POOL_MAX = 10
OWN_OPTIONS = ("connect_timeout", "pool_min", "pool_max")
"""Query parameters the store reads itself (and strips before the driver sees the URL)."""
_MYSQL_OPTIONS = ("unix_socket",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where a server backend connects, and how."""

    backend: str
    host: str
    port: int
    user: str | None
    password: str | None = field(default=None, repr=False)
    database: str | None
    options: dict[str, str] = field(default_factory=dict)
    """Driver options from the query string (our own ``OWN_OPTIONS`` removed)."""
    driver_url: str = field(default="", repr=False)
    """The URL without our own options (may hold the password)."""
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    pool_min: int = DEFAULT_POOL_MIN
    pool_max: int = DEFAULT_POOL_MAX

    @property
    def address(self) -> str:
        """``host:port`` for messages (``localhost:5432`` when the URL names no host)."""
        return f"{self.host}:{self.port}"

    def safe_cause(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain with ``from``, or ``None`` when its text would reveal the password."""
        text = f"{exc!s} {exc!r}"
        return None if self.scrub(text) != text else exc

    def scrub(self, text: str) -> str:
        """``text`` with the password (raw and URL-encoded) replaced by ``***``."""
        for secret in {self.password, _quoted_password(self.driver_url)}:
            if secret:
                text = text.replace(secret, "***")
        return text


def _quoted_password(url: str) -> str | None:
    return urlsplit(url).password if url else None


def parse_endpoint(backend: str, url: str) -> Endpoint:
    """Split a normalised ``postgresql://`` or ``mysql://`` URL.

    Raises:
        StoreConfigError: ``store.config_invalid`` — a port that is not a number in
            1..65535, a MySQL URL without a database, an unknown or bad option. The
            message never contains the password.
    """
    parts = urlsplit(url)
    problems: list[str] = []
    try:
        port = parts.port or DEFAULT_PORTS[backend]
    except ValueError:
        netloc_host = parts.netloc.rpartition("@")[2]
        problems.append(f"port in '{netloc_host}' is not a number in 1..65535")
        port = DEFAULT_PORTS[backend]
    database = unquote(parts.path.lstrip("/")) or None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    own = {k: query.pop(k) for k in OWN_OPTIONS if k in query}
    timeout = _number(own, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_S, problems)
    pool_min = int(_number(own, "pool_min", DEFAULT_POOL_MIN, problems))
    pool_max = int(_number(own, "pool_max", DEFAULT_POOL_MAX, problems))
    if pool_max < max(1, pool_min):
        problems.append(f"pool_max={pool_max} must be >= 1 and >= pool_min={pool_min}")
    if backend == "mysql":
        if database is None:
            problems.append("a MySQL DSN must name a database: mysql://user:password@host:3306/dbname")
        unknown = sorted(set(query) - set(_MYSQL_OPTIONS))
        if unknown:
            problems.append(
                f"unsupported MySQL DSN option(s) {', '.join(unknown)}: use {', '.join(_MYSQL_OPTIONS)}"
            )
    if problems:
        raise StoreConfigError(f"bad {backend} DSN {redact(url)}: " + "; ".join(problems))
    driver_url = urlunsplit(parts._replace(query=urlencode(query)))
    return Endpoint(
        backend=backend, host=parts.hostname or "localhost", port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        database=database, options=query, driver_url=driver_url,
        connect_timeout_s=timeout, pool_min=pool_min, pool_max=pool_max,
    )


def _number(own: dict[str, str], name: str, default: float, problems: list[str]) -> float:
    if name not in own:
        return default
    try:
        value = float(own[name])
    except ValueError:
        value = -1.0
    if value < 0 or (name != "connect_timeout" and value != int(value)):
        problems.append(f"option {name}={own[name]!r} must be a non-negative number")
        return default
    return value


def redact(url: str) -> str:
    """``url`` without its credentials: ``scheme://host:port/db``."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def import_driver(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import a database driver, or say which extra installs it.

    Raises:
        MissingExtraError: ``extra.missing`` — ``module`` is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, feature=feature, module=module) from exc
