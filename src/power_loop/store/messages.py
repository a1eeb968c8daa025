"""The message log: an append-only audit trail, numbered per session by ``seq``.

Invariants: rows are only ever inserted (a fold changes ``state``, never content);
seqs of one session are contiguous from 1, assigned by the append that wins the
session's ``next_seq`` fence in the same transaction; ``content``, ``tool_calls`` and
``meta`` are stored as JSON text and decode to what was appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.json import Message
from power_loop.store.codec import EMPTY_OBJECT, decode_json, decode_object, encode_json
from power_loop.store.port import Dialect, Row, Stmt
from power_loop.store.rows import MessageRow, MessageState, NewMessage, WindowRows
from power_loop.store.schema import MESSAGES

COLUMNS = (
    "session_id", "seq", "role", "name", "content", "tool_calls", "tool_call_id", "round_index", "send_index",
    "state", "meta", "created_at",
)
WINDOW_COLUMNS = ("seq", "role", "name", "content", "tool_calls", "tool_call_id", "round_index")
"""What a session window is built from (``load_window``): fewer values to fetch per row."""
ROWS_PER_INSERT = 256
"""Rows per multi-row ``INSERT`` (12 parameters each: far below every engine's limit)."""
_ACTIVE = MessageState.ACTIVE.value
_CACHED_INSERTS = 16


class MessageQueries:
    """The rendered SQL of the messages table for one dialect and prefix."""

    __slots__ = ("_head", "_inserts", "_render", "load_active", "load_all", "load_window", "load_window_json")

    def __init__(self, dialect: Dialect, table_prefix: str) -> None:
        t = f"{table_prefix}{MESSAGES.name}"
        cols = ", ".join(COLUMNS)
        self._render = dialect.render
        self._head = f"INSERT INTO {t} ({cols}) VALUES "
        self._inserts: dict[int, str] = {}
        self.load_active = dialect.render(
            f"SELECT {cols} FROM {t} WHERE session_id = ? AND state = '{_ACTIVE}' ORDER BY seq"
        )
        self.load_all = dialect.render(f"SELECT {cols} FROM {t} WHERE session_id = ? ORDER BY seq")
        self.load_window = dialect.render(
            f"SELECT {', '.join(WINDOW_COLUMNS)} FROM {t} WHERE session_id = ? AND state = '{_ACTIVE}'"
            " ORDER BY seq"
        )
        self.load_window_json = dialect.window_json(t, f"session_id = ? AND state = '{_ACTIVE}'")
        """The window as wire JSON built by the engine (one row), or None: ``load_window``."""

    def insert(self, n: int) -> str:
        """A rendered ``INSERT`` of ``n`` rows (cached for small ``n``)."""
        sql = self._inserts.get(n)
        if sql is None:
            group = "(" + ", ".join("?" * len(COLUMNS)) + ")"
            sql = self._render(self._head + ", ".join([group] * n))
            if n <= _CACHED_INSERTS:
                self._inserts[n] = sql
        return sql

    def insert_stmts(self, params: list[Any], n: int) -> list[Stmt]:
        """``INSERT`` statements for ``n`` rows whose parameters are flattened in ``params``."""
        if n <= ROWS_PER_INSERT:
            return [Stmt(self.insert(n), params)]
        width = len(COLUMNS)
        stmts = []
        for start in range(0, n, ROWS_PER_INSERT):
            k = min(ROWS_PER_INSERT, n - start)
            stmts.append(Stmt(self.insert(k), params[start * width:(start + k) * width]))
        return stmts


def encode_messages(session_id: str, messages: Sequence[NewMessage], first_seq: int,
                    now: int) -> tuple[list[Any], list[MessageRow]]:
    """Validate and encode ``messages`` numbered from ``first_seq``.

    Returns:
        The flattened ``COLUMNS`` parameters of every row, and the ``MessageRow`` each
        stores (values equal to what a load decodes).

    Raises:
        InvalidArgumentError: ``invalid_argument`` — every bad message, at once.
    """
    params: list[Any] = []
    rows: list[MessageRow] = []
    problems: list[str] = []
    seq = first_seq
    for i, m in enumerate(messages):
        try:
            content_text = encode_json(m.content)
            calls = m.tool_calls
            calls_text = None if calls is None else encode_json(calls)
            meta = m.meta
            meta_text = EMPTY_OBJECT if not meta else encode_json(meta)
        except (TypeError, ValueError) as exc:
            problems.append(f"message {i} ({getattr(m, 'role', '?')!r}) is not JSON-serialisable: {exc}")
            continue
        bad = _shape_problem(m)
        if bad:
            problems.append(f"message {i}: {bad}")
            continue
        content = m.content
        if content is not None and type(content) is not str:
            content, content_text = _canonical(content_text)  # what a load returns (tuples become lists, ...)
        stored_calls = None
        if calls_text is not None:
            stored_calls, calls_text = _canonical(calls_text)
        params += (session_id, seq, m.role, m.name, content_text, calls_text, m.tool_call_id,
                   m.round_index, m.send_index, _ACTIVE, meta_text, now)
        rows.append(MessageRow(
            session_id=session_id, seq=seq, role=m.role, name=m.name, content=content,
            tool_calls=stored_calls, tool_call_id=m.tool_call_id,
            round_index=m.round_index, state=_ACTIVE, meta={} if not meta else decode_json(meta_text),
            created_at=now, send_index=m.send_index,
        ))
        seq += 1
    if problems:
        raise InvalidArgumentError("append_messages: " + "; ".join(problems))
    return params, rows


def tool_calls_problem(calls: Any) -> str | None:
    """Why ``calls`` cannot be a message's ``tool_calls`` (a list of objects, or None), else None."""
    if calls is None:
        return None
    if not isinstance(calls, list):
        return f"tool_calls must be a list or None, got {type(calls).__name__}"
    for i, call in enumerate(calls):
        if not isinstance(call, dict):
            return f"tool_calls[{i}] must be an object (a dict), got {type(call).__name__}"
    return None


def canonical_json(text: str) -> str:
    """The store's text for an encoded structured value: ``text`` re-encoded from what it
    decodes to, where that differs (see ``_canonical``)."""
    return _canonical(text)[1]


def _canonical(text: str) -> tuple[Any, str]:
    """``(value, text)`` for an encoded structured value, ``text`` re-encoded from ``value``
    where decoding changed it: a dict whose keys collide once made strings (``1`` and
    ``"1"``) encodes both, decodes to one. Stored text is then always the encoding of what
    a load returns, which is what lets a window's wire JSON be spliced from it."""
    value = decode_json(text)
    again = encode_json(value)
    return value, (text if again == text else again)


def _shape_problem(m: NewMessage) -> str | None:
    if type(m.role) is not str or not m.role:
        return f"role must be a non-empty string, got {m.role!r}"
    for what, value in (("name", m.name), ("tool_call_id", m.tool_call_id)):
        if value is not None and type(value) is not str:
            return f"{what} must be a string or None, got {type(value).__name__}"
    for what, index in (("round_index", m.round_index), ("send_index", m.send_index)):
        if index is not None and (type(index) is not int):
            return f"{what} must be an int or None, got {index!r}"
    calls_problem = tool_calls_problem(m.tool_calls)
    if calls_problem:
        return calls_problem
    if not isinstance(m.meta, dict):
        return f"meta must be a dict, got {type(m.meta).__name__}"
    return None


def message_from_row(row: Row) -> MessageRow:
    """Decode a row selected with ``COLUMNS``."""
    calls = row[5]
    return MessageRow(
        session_id=row[0], seq=int(row[1]), role=row[2], name=row[3], content=decode_json(row[4]),
        tool_calls=None if calls is None else decode_json(calls), tool_call_id=row[6], round_index=row[7],
        send_index=row[8], state=row[9], meta=decode_object(row[10]), created_at=int(row[11]),
    )


def decode_all(texts: list[str]) -> list[Any]:
    """``[decode_json(t) for t in texts]``, parsed as one JSON array.

    On short texts (most messages) ``json.loads``'s per-call overhead costs more than
    the parse; one call over ``[t1,t2,...]`` does the same work in C. The texts are
    what the store wrote (each one JSON value); if the joined text does not parse into
    exactly one value per text (a damaged row), decoding falls back to one by one, which
    raises that row's own error.
    """
    if not texts:
        return []
    try:
        values: list[Any] = decode_json("[" + ",".join(texts) + "]")
    except (ValueError, RecursionError):  # RecursionError: a text nested to the limit, one level deeper here
        values = []
    if len(values) != len(texts):  # a text was invalid, empty, or several values ("1,2")
        values = [decode_json(t) for t in texts]
    return values


def window_from_rows(rows: list[Row]) -> tuple[list[Message], list[int], list[int | None]]:
    """Rows selected with ``WINDOW_COLUMNS`` as (messages, seqs, round indexes), skipping
    the ``MessageRow`` layer: the cold-load path of a session window. Each message is
    exactly ``message_from_row(row).to_message()`` (same keys, same order)."""
    texts: list[str] = []
    for row in rows:
        texts.append(row[3])
        if row[4] is not None:
            texts.append(row[4])
    values = iter(decode_all(texts))
    messages: list[Message] = []
    seqs: list[int] = []
    rounds: list[int | None] = []
    for row in rows:
        msg: Message = {"role": row[1], "content": next(values)}
        if row[2] is not None:
            msg["name"] = row[2]
        if row[4] is not None:
            calls = next(values)
            if calls:
                msg["tool_calls"] = calls
        if row[5] is not None:
            msg["tool_call_id"] = row[5]
        messages.append(msg)
        seqs.append(int(row[0]))
        rounds.append(row[6])
    return messages, seqs, rounds


def window_from_json(row: Row | None) -> WindowRows | None:
    """The row of a ``load_window_json`` query as a window, or None when it cannot be
    trusted and the window must load row by row: text that is not UTF-8 or does not
    parse, a row the query refused (NULL: one message fewer than seqs), or seqs out of
    order (SQLite does not promise ``group_concat`` order). The row path then raises a
    damaged row's own error. Each message equals ``message_from_row(r).to_message()``
    with the same key order, because the wire JSON is built in that order and parses
    back, one object per row: each spliced text was checked to be one JSON value."""
    if row is None or row[1] is None:  # no rows
        return WindowRows(messages=[], seqs=[], round_indexes=[])
    wire = row[0]
    if wire is None:  # every row refused
        return None
    if type(wire) is not bytes:
        wire = bytes(wire) if isinstance(wire, (bytearray, memoryview)) else str(wire).encode()
    try:
        messages = decode_json("[" + wire.decode() + "]")  # strict UTF-8, as the row path reads text
        seqs = decode_json("[" + row[1] + "]")
        rounds = decode_json("[" + row[2] + "]")
    except (ValueError, RecursionError, TypeError):  # UnicodeDecodeError is a ValueError
        return None
    if not (type(messages) is list and type(seqs) is list and type(rounds) is list
            and len(messages) == len(seqs) == len(rounds) and seqs == sorted(seqs)):
        return None
    return WindowRows(messages=messages, seqs=seqs, round_indexes=rounds, encoded=wire)
