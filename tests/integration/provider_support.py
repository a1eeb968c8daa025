"""Helpers for loop-over-HTTP tests (a plain module: tests/ has no packages)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from power_loop import (
    AgentEvent,
    AgentEventBus,
    AgentEventType,
    AgentLoopConfig,
    LLMProviderConfig,
    LLMRetryPolicy,
    StatefulAgentLoop,
    ToolRegistry,
    create_llm_service_from_config,
)
from power_loop.testing import FakeLLMServer

PROVIDERS = ("openai", "anthropic")
FAST_RETRY = LLMRetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=1.0, total_timeout=None)
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def registry(slow_s: float = 0.0, on_call: Callable[[str], None] | None = None) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool(name="math.add")
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: First addend.
            b: Second addend.
        """
        if on_call is not None:
            on_call(f"add {a} {b}")
        return a + b

    @reg.tool
    async def wait(seconds: float) -> str:
        """Wait a while.

        Args:
            seconds: How long.
        """
        await asyncio.sleep(seconds or slow_s)
        return "waited"

    return reg


def llm_config(server: FakeLLMServer, provider: str, **kwargs: Any) -> LLMProviderConfig:
    values: dict[str, Any] = {"api_key": "k", "model": "fake-model", "timeout_s": 5.0, **kwargs}
    return LLMProviderConfig(base_url=server.base_url if provider == "openai" else server.anthropic_base_url,
                             provider=provider, **values)


class Recorder:
    """Collects every event of the bus it is subscribed to."""

    def __init__(self, bus: AgentEventBus) -> None:
        self.events: list[AgentEvent] = []
        bus.subscribe(None, self.events.append)

    def of(self, etype: AgentEventType) -> list[AgentEvent]:
        return [e for e in self.events if e.type is etype]


@asynccontextmanager
async def loop_over(server: FakeLLMServer, provider: str, tmp_path: Path, *, config: AgentLoopConfig | None = None,
                    tools: ToolRegistry | None = None, bus: AgentEventBus | None = None,
                    **llm_kwargs: Any) -> AsyncIterator[StatefulAgentLoop]:
    llm = create_llm_service_from_config(llm_config(server, provider, **llm_kwargs))
    loop = StatefulAgentLoop(llm=llm, dsn=str(tmp_path / f"{provider}.db"), config=config or AgentLoopConfig(),
                             tool_registry=tools, event_bus=bus)
    try:
        yield loop
    finally:
        await loop.aclose()
        await llm.close()
