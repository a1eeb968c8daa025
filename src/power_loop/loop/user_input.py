"""Turning ``send``'s ``user_input`` into one user message, refusing bad input early."""

from __future__ import annotations

from typing import Any

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.json import Message
from power_loop.store.codec import json_problem


def normalize_user_input(user_input: Any) -> Message:
    """A ``{"role": "user", "content": …}`` message from a string or a message/parts dict.

    Raises:
        InvalidArgumentError: ``invalid_argument`` — empty, blank or non-text input.
    """
    if isinstance(user_input, str):
        if not user_input.strip():
            raise InvalidArgumentError("user_input is empty: send needs some text")
        if not user_input.isascii():
            problem = json_problem("user_input", user_input)
            if problem:
                raise InvalidArgumentError(problem)
        return {"role": "user", "content": user_input}
    if isinstance(user_input, dict):
        content = user_input.get("content")
        role = user_input.get("role", "user")
        if role != "user":
            raise InvalidArgumentError(f"user_input dict must have role 'user', got {role!r}")
        if isinstance(content, str):
            if not content.strip():
                raise InvalidArgumentError("user_input content is empty")
        elif isinstance(content, list):
            if not content or not all(isinstance(p, dict) and "type" in p for p in content):
                raise InvalidArgumentError("user_input content parts must be a non-empty list of dicts with 'type'")
        else:
            raise InvalidArgumentError("user_input dict needs 'content': a string or a list of content parts")
        problem = json_problem("user_input content", content)
        if problem:
            raise InvalidArgumentError(problem)
        return {"role": "user", "content": content}
    raise InvalidArgumentError(f"user_input must be a string or a message dict, got {type(user_input).__name__}")
