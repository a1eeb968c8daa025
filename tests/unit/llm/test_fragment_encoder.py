"""Bodies assembled from cached message fragments are byte-identical to a plain encoding."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from power_loop.llm.contract import EncodedHistory
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


class Opaque:
    """Not JSON-serialisable: a message holding one cannot have been encoded."""


def encoded_of(history: list[dict[str, object]]) -> EncodedHistory:
    text = plain(history)[1:-1]  # type: ignore[arg-type]
    return EncodedHistory(len(history), history[0], history[-1], text)


def test_a_seed_stands_for_the_history_it_covers() -> None:
    """The store's wire JSON of a cold history is spliced in, not encoded again: a history
    whose messages could not be encoded still goes out, exactly as the seed says."""
    history = [{"role": "user", "content": f"m{i} ✓"} for i in range(20)]
    seed = encoded_of(history)
    hidden = [dict(m, extra=Opaque()) for m in history]  # would fail to encode: proves the splice
    spied = EncodedHistory(seed.count, hidden[0], hidden[-1], seed.text)
    encoder = FragmentEncoder()
    head = [{"role": "system", "content": "sys"}]
    out = encoder.encode({"model": "m", "messages": [*head, *hidden]}, head, hidden, spied)
    assert out == plain({"model": "m", "messages": [*head, *history]})
    grown = [*hidden, {"role": "user", "content": "next"}]  # later calls extend the seeded entry
    out = encoder.encode({"model": "m", "messages": grown}, [], grown)
    assert out == plain({"model": "m", "messages": [*history, {"role": "user", "content": "next"}]})


def test_a_seed_covering_a_prefix_is_extended() -> None:
    history = [{"role": "user", "content": f"m{i}"} for i in range(10)]
    longer = [*history, {"role": "assistant", "content": "new"}]
    body = {"messages": longer}
    assert FragmentEncoder().encode(body, [], longer, encoded_of(history)) == plain(body)


def test_a_seed_of_other_messages_is_ignored() -> None:
    history = [{"role": "user", "content": f"m{i}"} for i in range(10)]
    body = {"messages": history}
    lookalike = [dict(m) for m in history]  # equal, but not the same objects
    for seed in (encoded_of(lookalike),  # another list's first message
                 EncodedHistory(11, history[0], history[-1], b"x"),  # more messages than there are
                 EncodedHistory(10, history[0], history[8], b"x"),  # last message not where it says
                 EncodedHistory(0, history[0], history[0], b"")):
        assert FragmentEncoder().encode(body, [], history, seed) == plain(body)


def test_a_cached_entry_wins_over_a_seed() -> None:
    history = [{"role": "user", "content": f"m{i}"} for i in range(10)]
    body = {"messages": history}
    encoder = FragmentEncoder()
    encoder.encode(body, [], history)
    stale = EncodedHistory(10, history[0], history[-1], b"not what the entry holds")
    assert encoder.encode(body, [], history, stale) == plain(body)
