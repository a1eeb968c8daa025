"""Fixtures for loop tests: a tool registry and a loop factory over a temp SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from loop_support import LoopFactory

from power_loop import AgentEventBus, AgentLoopConfig, StatefulAgentLoop, ToolRegistry
from power_loop.testing import ScriptedLLM


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: First addend.
            b: Second addend.
        """
        return a + b

    @reg.tool
    def boom(reason: str) -> str:
        """Always fails.

        Args:
            reason: Why.
        """
        raise RuntimeError(reason)

    @reg.tool
    async def slow(seconds: float) -> str:
        """Sleep a while.

        Args:
            seconds: How long.
        """
        await asyncio.sleep(seconds)
        return "slept"

    @reg.tool
    def big(n: int) -> str:
        """Return n characters.

        Args:
            n: Size.
        """
        return "x" * n

    return reg


@pytest.fixture
async def make_loop(tmp_path: Path, registry: ToolRegistry) -> AsyncIterator[LoopFactory]:
    loops: list[StatefulAgentLoop] = []

    def factory(llm: ScriptedLLM, *, config: AgentLoopConfig | None = None, tools: Any = "default",
                bus: AgentEventBus | None = None, db: str | None = None, **kwargs: Any) -> StatefulAgentLoop:
        loop = StatefulAgentLoop(
            llm=llm, dsn=db or str(tmp_path / "loop.db"), config=config,
            tool_registry=registry if tools == "default" else tools, event_bus=bus, **kwargs,
        )
        loops.append(loop)
        return loop

    yield factory
    for loop in loops:
        await loop.aclose()
