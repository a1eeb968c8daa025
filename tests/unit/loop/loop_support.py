"""Helpers shared by the loop tests (a plain module: tests/ has no packages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from power_loop import StatefulAgentLoop

LoopFactory = Callable[..., StatefulAgentLoop]


def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in messages]
