"""Bodies assembled from cached message fragments are byte-identical to a plain encoding."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from power_loop.llm.transports._sdk_wire import FragmentEncoder

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool"]), "content": st.one_of(st.none(), text)},
    optional={"tool_call_id": text, "tool_calls": st.lists(st.fixed_dictionaries(
        {"id": text, "type": st.just("function"),
         "function": st.fixed_dictionaries({"name": text, "arguments": text})}), max_size=2)},
)


def plain(body: dict[str, object]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@settings(max_examples=150, deadline=None)
@given(history=st.lists(message, max_size=30), extra_turns=st.lists(message, max_size=5),
       model=text, temperature=st.one_of(st.none(), st.floats(0, 2)))
def test_fragments_equal_plain_encoding_across_growing_calls(
    history: list[dict[str, object]], extra_turns: list[dict[str, object]], model: str, temperature: float | None
) -> None:
    encoder = FragmentEncoder()
    head = [{"role": "system", "content": "sys ✓"}]
    body: dict[str, object] = {"model": model, "messages": [*head, *history], "max_tokens": 5}
    if temperature is not None:
        body["temperature"] = temperature
    assert encoder.encode(body, head, history) == plain(body)
    grown = history + extra_turns  # the same message objects, plus new ones
    body["messages"] = [*head, *grown]
    assert encoder.encode(body, head, grown) == plain(body)


def test_a_bounded_cache_still_encodes_exactly() -> None:
    encoder = FragmentEncoder(max_entries=1, limit_bytes=50)
    history = [{"role": "user", "content": f"message {i} ünïcode"} for i in range(40)]
    body = {"model": "m", "messages": history, "stream": True}
    for _ in range(3):
        assert encoder.encode(body, [], history) == plain(body)


def test_a_history_replaced_in_the_middle_is_not_served_from_the_cache() -> None:
    encoder = FragmentEncoder()
    first = {"role": "user", "content": "a"}
    history = [first, {"role": "assistant", "content": "b"}]
    encoder.encode({"messages": history}, [], history)
    other = [first, {"role": "assistant", "content": "different"}, {"role": "user", "content": "c"}]
    assert encoder.encode({"messages": other}, [], other) == plain({"messages": other})
