"""Registry tool names ↔ provider wire names.

Registry names may use ``[A-Za-z0-9_.:-]{1,128}`` (``fs.read_file``, ``mcp:search``);
providers accept only ``[A-Za-z0-9_-]{1,64}``. A ``ToolNameMap`` built from the names
offered in one request maps each to a legal, unique wire name and back.

Invariants:
- A name that is already legal maps to itself, always.
- Every other name has its illegal characters replaced by ``_``; when that result is
  over 64 characters or collides with another name of the map, it is shortened and
  suffixed with ``_`` + the first 8 hex digits of the SHA-1 of the original name.
- The mapping is a pure function of the *set* of names: registration order does not
  change it (the rare second-level collision is broken in sorted order).
- ``from_wire`` of a name it did not produce returns that name unchanged, so the engine
  answers "unknown tool" with the model's own spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

_WIRE_LEGAL = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ILLEGAL_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_MAX_WIRE = 64
_HASH_HEX = 8

__all__ = ["ToolNameMap", "ToolNameMapCache", "is_wire_legal", "legal_wire_name"]


def is_wire_legal(name: str) -> bool:
    """True when ``name`` is accepted as a tool name by every supported provider."""
    return _WIRE_LEGAL.fullmatch(name) is not None


def _digest(name: str, length: int = _HASH_HEX) -> str:
    import hashlib  # only long or clashing names need it; ~1 ms of import saved

    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:length]


def _sanitize(name: str) -> str:
    return _ILLEGAL_CHAR.sub("_", name) or "_"


def _hashed(name: str, length: int = _HASH_HEX) -> str:
    suffix = "_" + _digest(name, length)
    return _sanitize(name)[: _MAX_WIRE - len(suffix)] + suffix


@lru_cache(maxsize=4096)
def legal_wire_name(name: str) -> str:
    """The wire name of ``name`` considered alone, without a map to collide with.

    Legal names map to themselves; others are sanitized, and hashed when over 64
    characters.
    """
    if is_wire_legal(name):
        return name
    clean = _sanitize(name)
    return clean if len(clean) <= _MAX_WIRE else _hashed(name)


class ToolNameMap:
    """A bijection between the registry names of one tool list and legal wire names.

    Example:
        >>> names = ToolNameMap(["fs.read_file", "fs_read_file", "search"])
        >>> names.to_wire("search"), names.to_wire("fs_read_file")
        ('search', 'fs_read_file')
        >>> wire = names.to_wire("fs.read_file")
        >>> wire.startswith("fs_read_file_"), names.from_wire(wire)
        (True, 'fs.read_file')
    """

    __slots__ = ("_from_wire", "_to_wire", "is_identity", "unchanged")

    def __init__(self, names: Iterable[str]) -> None:
        unique = sorted(set(names))
        to_wire: dict[str, str] = {}
        taken: set[str] = set()
        # Legal names first: they always keep their own spelling.
        for name in unique:
            if is_wire_legal(name):
                to_wire[name] = name
                taken.add(name)
        pending = [n for n in unique if n not in to_wire]
        candidates: dict[str, list[str]] = {}
        for name in pending:
            clean = _sanitize(name)
            key = clean if len(clean) <= _MAX_WIRE else ""
            candidates.setdefault(key, []).append(name)
        for key, group in sorted(candidates.items()):
            for name in group:
                wire = key if key and len(group) == 1 and key not in taken else _hashed(name)
                length = _HASH_HEX
                while wire in taken:  # second-level collision: lengthen the hash
                    length += 4
                    wire = _hashed(name, length)
                to_wire[name] = wire
                taken.add(wire)
        self._to_wire = to_wire
        self._from_wire = {wire: name for name, wire in to_wire.items()}
        self.is_identity: bool = all(name == wire for name, wire in to_wire.items())
        """True when every name of the map is its own wire name."""
        self.unchanged: set[str] = {name for name, wire in to_wire.items() if name == wire}
        """Names known to be their own wire name (grows as ``to_wire`` meets legal outside names)."""

    def to_wire(self, name: str) -> str:
        """The wire name for registry ``name`` (names outside the map use ``legal_wire_name``)."""
        wire = self._to_wire.get(name)
        if wire is not None:
            return wire
        wire = legal_wire_name(name)
        if wire == name:
            self.unchanged.add(name)
            return name
        # A name outside the map (an old tool in the history) must not impersonate one in it.
        return wire if wire not in self._from_wire else _hashed(name)

    def from_wire(self, wire: str) -> str:
        """The registry name for ``wire``; an unknown wire name is returned unchanged."""
        return self._from_wire.get(wire, wire)

    def __len__(self) -> int:
        return len(self._to_wire)

    def __contains__(self, name: object) -> bool:
        return name in self._to_wire

    def items(self) -> list[tuple[str, str]]:
        """``(registry name, wire name)`` pairs, sorted by registry name."""
        return sorted(self._to_wire.items())

    def __repr__(self) -> str:
        changed = {n: w for n, w in self._to_wire.items() if n != w}
        return f"ToolNameMap({len(self._to_wire)} names, renamed={changed!r})"


def _offered_name(tool: Mapping[str, Any]) -> str:
    """A tool dict's name: OpenAI-shaped (``function.name``) or Anthropic-shaped (``name``)."""
    return str((tool.get("function") or {}).get("name") or tool.get("name"))


class ToolNameMapCache:
    """The ``ToolNameMap`` of each offered tool list a transport sees (bounded).

    A send offers the same tool dicts every round, so the previous call's list is
    recognised by comparing the dicts (identity first) without reading their names again.
    """

    __slots__ = ("_last", "_maps", "_max")

    def __init__(self, max_maps: int = 64) -> None:
        self._maps: dict[tuple[str, ...], ToolNameMap] = {}
        self._last: tuple[tuple[Any, ...], ToolNameMap] | None = None
        self._max = max_maps

    def get(self, tools: Iterable[Any] | None) -> ToolNameMap | None:
        """The map for ``tools`` (dicts; anything else is ignored), or None when there are none."""
        if not tools:
            return None
        offered = tuple(tools)
        last = self._last
        if last is not None and last[0] == offered:
            return last[1]
        names = tuple(_offered_name(t) for t in offered if isinstance(t, dict))
        name_map = self._maps.get(names)
        if name_map is None:
            if len(self._maps) >= self._max:
                self._maps.clear()
            name_map = self._maps[names] = ToolNameMap(names)
        self._last = (offered, name_map)
        return name_map
