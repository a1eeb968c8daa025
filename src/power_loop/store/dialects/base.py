"""Upsert syntaxes shared by the dialects: the two forms every supported engine accepts.

``on_conflict_upsert`` is the SQLite/PostgreSQL form (``ON CONFLICT (key) DO UPDATE``);
``on_duplicate_key_upsert`` is the MySQL/MariaDB form with ``VALUES(col)`` — never the
MySQL-8-only row alias, which MariaDB rejects. Both keep the port's conventions:

* placeholders are ``?``, one per inserted column, in ``columns`` order;
* an ``update`` entry ``"+col"`` adds the inserted value to the stored one, ``"col"``
  overwrites it; columns not listed keep their stored value;
* an empty ``update`` is an insert-or-ignore that reports 0 affected rows on a
  conflict, so ``Stmt(expect_rows=1)`` detects an existing key.

Increments are qualified with the table name (``t.col + excluded.col``): PostgreSQL
rejects the bare ``col`` as ambiguous between the row and ``excluded``.

``wire_message_sql`` is the one expression both SQLite and PostgreSQL use to build a
session window's wire JSON in the engine (``Dialect.window_json``).
"""

from __future__ import annotations

from collections.abc import Sequence


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def on_conflict_upsert(table: str, columns: Sequence[str], key: Sequence[str], update: Sequence[str]) -> str:
    """``INSERT … ON CONFLICT (key) DO UPDATE SET …`` (SQLite ≥ 3.24, PostgreSQL ≥ 9.5).

    Args:
        table: The prefixed table name.
        columns: Inserted columns, one ``?`` each.
        key: The conflict target (the primary key or a unique index).
        update: Columns to overwrite, or ``"+col"`` to increment; empty: do nothing.

    Returns:
        The statement, with ``?`` placeholders.
    """
    head = f"{_insert(table, columns)} ON CONFLICT ({', '.join(key)})"
    if not update:
        return head + " DO NOTHING"
    sets = [
        f"{col[1:]} = {table}.{col[1:]} + excluded.{col[1:]}" if col.startswith("+")
        else f"{col} = excluded.{col}"
        for col in update
    ]
    return f"{head} DO UPDATE SET {', '.join(sets)}"


def on_duplicate_key_upsert(table: str, columns: Sequence[str], key: Sequence[str],
                            update: Sequence[str]) -> str:
    """``INSERT … ON DUPLICATE KEY UPDATE col = VALUES(col)`` (MySQL 5.7+/8.x, MariaDB 10.x).

    The conflict target is implied by the table's keys; ``key`` only names a column the
    insert-or-ignore form may assign to itself (a no-op that reports 0 affected rows
    when the client does not ask for found rows).

    Args:
        table: The prefixed table name.
        columns: Inserted columns, one ``?`` each.
        key: The primary key columns.
        update: Columns to overwrite, or ``"+col"`` to increment; empty: do nothing.

    Returns:
        The statement, with ``?`` placeholders.
    """
    head = f"{_insert(table, columns)} ON DUPLICATE KEY UPDATE "
    if not update:
        return head + f"{key[0]} = {key[0]}"
    sets = [
        f"{col[1:]} = {col[1:]} + VALUES({col[1:]})" if col.startswith("+") else f"{col} = VALUES({col})"
        for col in update
    ]
    return head + ", ".join(sets)


def numbered_placeholders(sql: str) -> str:
    """Rewrite each ``?`` outside single-quoted literals as ``$1``, ``$2``, … (PostgreSQL)."""
    out: list[str] = []
    n = 0
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted  # '' inside a literal toggles twice: still quoted
        elif ch == "?" and not quoted:
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def format_placeholders(sql: str) -> str:
    """Rewrite each ``?`` outside single-quoted literals as ``%s`` and escape ``%`` (DB-API format)."""
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        elif ch == "?" and not quoted:
            out.append("%s")
            continue
        elif ch == "%":
            out.append("%%")  # the driver formats with ``sql % params``: a literal % must be doubled
            continue
        out.append(ch)
    return "".join(out)


def wire_message_sql(quote: str, check: str) -> str:
    """An SQL expression building a messages row as compact wire JSON, or NULL.

    The result is the text ``json.dumps(row.to_message(), ensure_ascii=False,
    separators=(",", ":"))`` would give: keys in ``to_message`` order, ``name`` and
    ``tool_call_id`` only when set, ``tool_calls`` only when non-empty. ``content`` and
    ``tool_calls`` are spliced as stored (the store writes them in that same encoding),
    and the string columns go through ``quote`` — ``"json_quote({})"`` or
    ``"to_json({})::text"``, whose escapes must equal the wire encoder's (tests check
    every code point). ``check`` (``"json({0}) = {0}"``, ``"{0}::json IS NOT NULL"``)
    must hold for each spliced text, else the row yields NULL (or the engine raises): a
    damaged text such as ``"x","name":"y"`` would otherwise splice into valid JSON as
    an extra key, where reading the row alone fails.
    """
    def q(col: str) -> str:
        return quote.format(col)

    wire = ("'{\"role\":' || " + q("role") + " || ',\"content\":' || content"
            " || CASE WHEN name IS NULL THEN '' ELSE ',\"name\":' || " + q("name") + " END"
            " || CASE WHEN tool_calls IS NULL OR tool_calls = '[]' THEN ''"
            " ELSE ',\"tool_calls\":' || tool_calls END"
            " || CASE WHEN tool_call_id IS NULL THEN '' ELSE ',\"tool_call_id\":' || " + q("tool_call_id")
            + " END || '}'")
    valid = f"{check.format('content')} AND (tool_calls IS NULL OR {check.format('tool_calls')})"
    return f"CASE WHEN {valid} THEN {wire} END"
