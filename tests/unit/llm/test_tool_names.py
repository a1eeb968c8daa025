"""ToolNameMap: registry names ↔ provider-legal wire names."""

from __future__ import annotations

import random
import re

from hypothesis import given
from hypothesis import strategies as st

from power_loop.llm.tool_names import ToolNameMap, ToolNameMapCache, is_wire_legal, legal_wire_name

REGISTRY_NAME = st.from_regex(r"[A-Za-z0-9_.:-]{1,128}", fullmatch=True)
WIRE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@given(st.sets(REGISTRY_NAME, max_size=25))
def test_round_trip_legal_and_unique_for_any_names(names: set[str]) -> None:
    mapping = ToolNameMap(names)
    wires = [mapping.to_wire(n) for n in names]
    assert all(WIRE.fullmatch(w) for w in wires)
    assert len(set(wires)) == len(names)
    assert all(mapping.from_wire(mapping.to_wire(n)) == n for n in names)


@given(st.sets(REGISTRY_NAME, max_size=12), st.randoms())
def test_mapping_does_not_depend_on_order(names: set[str], rnd: random.Random) -> None:
    ordered = sorted(names)
    shuffled = list(ordered)
    rnd.shuffle(shuffled)
    assert ToolNameMap(ordered).items() == ToolNameMap(shuffled).items()


@given(st.sets(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True), max_size=20))
def test_legal_names_map_to_themselves(names: set[str]) -> None:
    mapping = ToolNameMap(names)
    assert mapping.is_identity
    assert all(mapping.to_wire(n) == n for n in names)


def test_illegal_characters_become_underscores() -> None:
    mapping = ToolNameMap(["fs.read_file", "mcp:search", "plain"])
    assert mapping.to_wire("fs.read_file") == "fs_read_file"
    assert mapping.to_wire("mcp:search") == "mcp_search"
    assert mapping.from_wire("fs_read_file") == "fs.read_file"
    assert not mapping.is_identity


def test_collisions_get_a_stable_hash_suffix() -> None:
    mapping = ToolNameMap(["fs.add", "fs_add", "fs:add"])
    assert mapping.to_wire("fs_add") == "fs_add"  # already legal: keeps its name
    dotted, coloned = mapping.to_wire("fs.add"), mapping.to_wire("fs:add")
    assert re.fullmatch(r"fs_add_[0-9a-f]{8}", dotted) and re.fullmatch(r"fs_add_[0-9a-f]{8}", coloned)
    assert dotted != coloned
    assert ToolNameMap(["fs.add", "fs_add"]).to_wire("fs.add") == dotted  # independent of the other names


def test_long_names_are_shortened_with_a_hash() -> None:
    long = "server." + "x" * 100
    wire = ToolNameMap([long]).to_wire(long)
    assert len(wire) == 64 and is_wire_legal(wire)
    assert wire == legal_wire_name(long)
    assert legal_wire_name("a" * 64) == "a" * 64


def test_unknown_wire_names_pass_through() -> None:
    assert ToolNameMap(["fs.read_file"]).from_wire("made_up") == "made_up"


def test_names_outside_the_map_never_impersonate_one_in_it() -> None:
    mapping = ToolNameMap(["fs_add"])
    wire = mapping.to_wire("fs.add")  # an old tool from the history
    assert wire != "fs_add" and is_wire_legal(wire)
    assert mapping.to_wire("old_tool") == "old_tool"
    assert "old_tool" in mapping.unchanged


def test_map_cache_recognises_the_offered_list_and_follows_changes() -> None:
    cache = ToolNameMapCache(max_maps=2)
    tools = [{"type": "function", "function": {"name": "fs.read"}}, {"name": "kb search"}]
    first = cache.get(tools)
    assert first is not None and first.to_wire("fs.read") != "fs.read" and first.from_wire(
        first.to_wire("kb search")) == "kb search"
    assert cache.get(tools) is first  # the same dicts: the same map
    assert cache.get([dict(t) for t in tools]) is first  # equal copies: looked up by names, the same map
    other = cache.get([{"type": "function", "function": {"name": "fs.write"}}])
    assert other is not None and other is not first and other.from_wire(other.to_wire("fs.write")) == "fs.write"
    assert cache.get([]) is None and cache.get(None) is None
    cache.get([{"name": "a"}])  # a third list: the bound clears the cache, nothing breaks
    assert cache.get(tools) is not None
