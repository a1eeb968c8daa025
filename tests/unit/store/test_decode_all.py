"""decode_all: one JSON parse for many stored texts, equal to decoding them one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from power_loop.store.codec import encode_json
from power_loop.store.messages import decode_all

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.lists(json_values, max_size=30))
def test_equals_decoding_one_by_one(values: list[Any]) -> None:
    texts = [encode_json(v) for v in values]
    assert decode_all(texts) == [json.loads(t) for t in texts]


@pytest.mark.parametrize("bad", ["", "1,2", "{", "nope"])
def test_a_damaged_text_raises_its_own_error(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_all(['"fine"', bad, "[1]"])
