"""Session archives: one session's whole durable state as JSON, and back into any store.

An archive is ``{"format", "schema_version", "session_id", "exported_at", "tables":
{<logical table>: [{column: value}]}}``. Its tables are derived from the declarative
schema: every table with a ``session_id`` column and ``exported=True`` (runtime state
such as leases is not carried), so a table added later is archived without touching
this module. JSON columns hold the decoded value; everything else is a string, an int
or ``None``. Invariants:

* An export is one consistent snapshot: it runs in a transaction that first locks the
  session row, and every writer of a session's rows updates that row first.
* An import is validated in full before anything is written (every problem named at
  once), then runs in one transaction: the database is unchanged on any error.
* The imported session is an independent root (no parent, depth 0, no lifecycle) under
  its own or a new id; ``next_seq``, ``send_count`` and the follow-up counter carry
  over, so it continues exactly where the original stopped.
"""

from __future__ import annotations

from typing import Any

from power_loop.contracts.errors import InvalidArgumentError, SessionNotFoundError
from power_loop.store.codec import decode_json, encode_json
from power_loop.store.messages import canonical_json, tool_calls_problem
from power_loop.store.port import Database, Dialect, Row
from power_loop.store.rows import MessageState, SessionKind, SessionStatus
from power_loop.store.schema import SCHEMA_VERSION, SESSIONS, TABLES, Table
from power_loop.store.sessions import MAX_SESSION_ID_LEN, OWNED_TABLES

ARCHIVE_FORMAT = "power_loop.session"
ARCHIVED_TABLES: tuple[Table, ...] = tuple(t for t in TABLES if t.exported and "session_id" in t.column_names)
"""Tables an archive carries: the sessions table first, then every exported owned table."""
_ROWS_PER_INSERT = 200
_ROOT = {"kind": SessionKind.ROOT.value, "parent_session_id": None, "spawn_tool_call_id": None,
         "spawn_depth": 0, "lifecycle": None}
_ENUMS = {("sessions", "status"): {s.value for s in SessionStatus},
          ("messages", "state"): {s.value for s in MessageState}}
_OBJECTS = frozenset({("sessions", "config"), ("sessions", "metadata"), ("messages", "meta")})
"""JSON columns that must hold an object (they decode to a dict)."""


class ArchiveQueries:
    """The rendered SQL of exports and imports for one dialect and prefix."""

    __slots__ = ("_dialect", "_inserts", "_prefix", "delete_owned", "delete_runtime", "lock", "select")

    def __init__(self, dialect: Dialect, table_prefix: str) -> None:
        self._dialect = dialect
        self._prefix = table_prefix
        r = dialect.render
        self.lock = r(f"SELECT session_id FROM {table_prefix}{SESSIONS.name} WHERE session_id = ?"
                      f"{dialect.lock_suffix()}")
        self.select = {
            t.name: r(f"SELECT {', '.join(t.column_names)} FROM {table_prefix}{t.name} WHERE session_id = ?"
                      f" ORDER BY {', '.join(t.primary_key)}")
            for t in ARCHIVED_TABLES
        }
        # Deleted in the lock order of every writer: runtime rows (the lease) before the
        # session row is locked, then the session row and its data.
        delete = "DELETE FROM {}{} WHERE session_id = ?"
        self.delete_runtime = [r(delete.format(table_prefix, t.name)) for t in OWNED_TABLES if not t.exported]
        self.delete_owned = [r(delete.format(table_prefix, t.name))
                             for t in (SESSIONS, *(t for t in OWNED_TABLES if t.exported))]
        self._inserts: dict[tuple[str, int], str] = {}

    def insert(self, table: Table, n: int) -> str:
        """A rendered ``INSERT`` of ``n`` rows into ``table`` (the sessions row: insert-or-ignore)."""
        sql = self._inserts.get((table.name, n))
        if sql is None:
            name = f"{self._prefix}{table.name}"
            if table is SESSIONS:
                sql = self._dialect.upsert(name, table.column_names, table.primary_key, ())
            else:
                group = "(" + ", ".join("?" * len(table.columns)) + ")"
                sql = f"INSERT INTO {name} ({', '.join(table.column_names)}) VALUES " + ", ".join([group] * n)
            sql = self._inserts[(table.name, n)] = self._dialect.render(sql)
        return sql


def _to_json(table: Table, row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col, value in zip(table.columns, row, strict=True):
        if col.type == "json" and value is not None:
            value = decode_json(value)
        elif col.type in ("int", "bigint") and value is not None:
            value = int(value)
        out[col.name] = value
    return out


async def export_session(db: Database, q: ArchiveQueries, session_id: str, now: int) -> dict[str, Any]:
    """The archive of ``session_id`` (see the module docstring).

    Raises:
        SessionNotFoundError: ``session.not_found`` — no such session.
    """
    tables: dict[str, list[dict[str, Any]]] = {}
    async with db.transaction() as tx:
        if await tx.fetchone(q.lock, (session_id,)) is None:
            raise SessionNotFoundError(session_id)
        for table in ARCHIVED_TABLES:
            rows = await tx.fetchall(q.select[table.name], (session_id,))
            tables[table.name] = [_to_json(table, r) for r in rows]
    return {"format": ARCHIVE_FORMAT, "schema_version": SCHEMA_VERSION, "session_id": session_id,
            "exported_at": now, "tables": tables}


def _check_id(what: str, value: object, problems: list[str]) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_SESSION_ID_LEN:
        problems.append(f"{what} must be a non-empty string of at most {MAX_SESSION_ID_LEN} characters,"
                        f" got {value!r}")


def _encode_value(table: Table, col_index: int, value: Any, where: str, problems: list[str]) -> Any:
    col = table.columns[col_index]
    if value is None and col.nullable:
        return None
    if col.type == "json":
        if (table.name, col.name) in _OBJECTS and not isinstance(value, dict):
            problems.append(f"{where}.{col.name} must be an object, got {type(value).__name__}")
            return None
        if (table.name, col.name) == ("messages", "tool_calls"):
            bad = tool_calls_problem(value)
            if bad:
                problems.append(f"{where}: {bad}")
                return None
        try:
            return canonical_json(encode_json(value))  # the text of what it loads as, as appends store it
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}.{col.name} is not JSON-serialisable ({exc})")
            return None
    if col.type in ("int", "bigint"):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}.{col.name} must be an int, got {value!r}")
        return value
    if not isinstance(value, str):
        problems.append(f"{where}.{col.name} must be a string, got {value!r}")
    elif value not in _ENUMS.get((table.name, col.name), {value}):
        allowed = sorted(_ENUMS[(table.name, col.name)])
        problems.append(f"{where}.{col.name} {value!r} is not one of {allowed}")
    return value


def _encode_rows(table: Table, rows: Any, source_id: str, target_id: str,
                 problems: list[str]) -> list[tuple[Any, ...]]:
    if not isinstance(rows, list):
        problems.append(f"tables.{table.name} must be a list of rows, got {type(rows).__name__}")
        return []
    known = set(table.column_names)
    encoded: list[tuple[Any, ...]] = []
    keys: set[tuple[Any, ...]] = set()
    for i, row in enumerate(rows):
        where = f"tables.{table.name}[{i}]"
        if not isinstance(row, dict):
            problems.append(f"{where} must be an object, got {type(row).__name__}")
            continue
        unknown = sorted(set(row) - known)
        if unknown:
            problems.append(f"{where} has unknown column(s) {', '.join(map(str, unknown))}")
        if row.get("session_id") != source_id:
            problems.append(
                f"{where}.session_id {row.get('session_id')!r} is not the archive's {source_id!r}"
            )
        if table is SESSIONS:
            row = {**row, **_ROOT}
        values: list[Any] = []
        for j, col in enumerate(table.columns):
            if col.name == "session_id":
                values.append(target_id)
            elif col.name in row:
                values.append(_encode_value(table, j, row[col.name], where, problems))
            elif col.nullable or col.default is not None:
                values.append(col.default)
            else:
                problems.append(f"{where} lacks column {col.name}")
                values.append(None)
        key = tuple(row.get(k) for k in table.primary_key)
        if key in keys:
            problems.append(f"{where} repeats primary key {dict(zip(table.primary_key, key, strict=True))}")
        keys.add(key)
        encoded.append(tuple(values))
    return encoded


def validate_archive(data: Any, new_session_id: str | None) -> tuple[str, dict[str, list[tuple[Any, ...]]]]:
    """Check an archive and encode its rows for insertion under the target id.

    Returns:
        ``(target session id, {table name: rows as column tuples})``.

    Raises:
        InvalidArgumentError: ``invalid_argument`` — every problem found, at once.
    """
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"import_session: an archive is a dict, got {type(data).__name__}")
    problems: list[str] = []
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(f"schema_version must be an int >= 1, got {version!r}")
    elif version > SCHEMA_VERSION:
        raise InvalidArgumentError(
            f"import_session: the archive's schema_version {version} is newer than this store's"
            f" {SCHEMA_VERSION}: upgrade power-loop to import it; the database was not changed"
        )
    if data.get("format", ARCHIVE_FORMAT) != ARCHIVE_FORMAT:
        problems.append(f"format {data.get('format')!r} is not {ARCHIVE_FORMAT!r}")
    source_id = data.get("session_id")
    _check_id("session_id", source_id, problems)
    target_id = source_id if new_session_id is None else new_session_id
    if new_session_id is not None:
        _check_id("new_session_id", new_session_id, problems)
    tables = data.get("tables")
    encoded: dict[str, list[tuple[Any, ...]]] = {}
    if not isinstance(tables, dict):
        problems.append(f"tables must be an object of table name -> rows, got {type(tables).__name__}")
    else:
        by_name = {t.name: t for t in ARCHIVED_TABLES}
        unknown = sorted(set(tables) - set(by_name))
        if unknown:
            problems.append(f"unknown table(s) {', '.join(map(str, unknown))}: use {', '.join(by_name)}")
        for table in ARCHIVED_TABLES:
            encoded[table.name] = _encode_rows(table, tables.get(table.name, []), str(source_id),
                                               str(target_id), problems)
        if len(encoded[SESSIONS.name]) != 1:
            problems.append(f"tables.sessions must hold exactly one row, got {len(encoded[SESSIONS.name])}")
        elif not problems:
            _check_counters(encoded, problems)
    if problems:
        raise InvalidArgumentError("import_session: malformed archive: " + "; ".join(problems)
                                   + "; the database was not changed")
    return str(target_id), encoded


def _column(table: Table, rows: list[tuple[Any, ...]], name: str) -> list[Any]:
    i = table.column_names.index(name)
    return [r[i] for r in rows]


def _check_counters(encoded: dict[str, list[tuple[Any, ...]]], problems: list[str]) -> None:
    """Seqs and follow-up ids must lie below the session's counters, or the next append would collide."""
    session = dict(zip(SESSIONS.column_names, encoded[SESSIONS.name][0], strict=True))
    for table_name, col, counter, limit in (("messages", "seq", "next_seq", session["next_seq"] - 1),
                                            ("follow_ups", "follow_up_id", "follow_up_seq",
                                             session["follow_up_seq"])):
        table = next(t for t in ARCHIVED_TABLES if t.name == table_name)
        values = _column(table, encoded[table_name], col)
        if values and (min(values) < 1 or max(values) > limit):
            problems.append(f"tables.{table_name}: {col} values must lie in 1..{limit} (the session's"
                            f" {counter} is {session[counter]})")


async def import_session(db: Database, q: ArchiveQueries, data: Any, *, new_session_id: str | None,
                         replace: bool) -> str:
    """Restore an archive as an independent root session, in one transaction.

    Returns:
        The imported session's id.

    Raises:
        InvalidArgumentError: ``invalid_argument`` — a malformed or newer archive, or the
            id exists and ``replace`` is false (nothing written).
    """
    target_id, encoded = validate_archive(data, new_session_id)
    async with db.transaction() as tx:
        if replace:
            for sql in q.delete_runtime:
                await tx.execute(sql, (target_id,))
        if await tx.fetchone(q.lock, (target_id,)) is not None:
            if not replace:
                raise InvalidArgumentError(
                    f"import_session: session {target_id!r} already exists: pass new_session_id=, or"
                    " replace=True to replace it; the database was not changed"
                )
            for sql in q.delete_owned:
                await tx.execute(sql, (target_id,))
        for table in ARCHIVED_TABLES:
            rows = encoded[table.name]
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start:start + _ROWS_PER_INSERT]
                params = [v for row in chunk for v in row]
                if await tx.execute(q.insert(table, len(chunk)), params) != len(chunk):
                    raise InvalidArgumentError(
                        f"import_session: session {target_id!r} was created concurrently; the database"
                        " was not changed"
                    )
    return target_id

