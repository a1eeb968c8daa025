"""Typed Python functions as tools: schema from the signature, validated arguments, events."""

import asyncio
import tempfile
from pathlib import Path

from _support import example_llm

from power_loop import AgentEvent, AgentEventBus, AgentEventType, StatefulAgentLoop, ToolRegistry

registry = ToolRegistry()


@registry.tool
def get_weather(city: str, unit: str = "celsius") -> dict[str, object]:
    """Current weather for a city.

    Args:
        city: City name, e.g. "Paris".
        unit: "celsius" or "fahrenheit".
    """
    temp = 21 if unit == "celsius" else 70
    return {"city": city, "temp": temp, "unit": unit, "sky": "clear"}


def show(event: AgentEvent) -> None:
    p = event.payload
    if event.type is AgentEventType.TOOL_CALL_STARTED:
        print(f"  -> {p['name']}({p['tool_input']})")
    elif event.type is AgentEventType.TOOL_CALL_COMPLETED:
        print(f"  <- {p['output']}")


async def main() -> None:
    bus = AgentEventBus()
    bus.subscribe(AgentEventType.TOOL_CALL_STARTED, show)
    bus.subscribe(AgentEventType.TOOL_CALL_COMPLETED, show)
    with example_llm() as llm, tempfile.TemporaryDirectory() as tmp:
        async with StatefulAgentLoop(llm=llm, dsn=str(Path(tmp) / "tools.db"), tool_registry=registry,
                                     event_bus=bus) as loop:
            sid = await loop.new_session()
            result = await loop.send("What is the weather in Paris?", session_id=sid)
            print(f"status={result.status} tools executed={result.tool_calls}")
            print(result.final_text)


if __name__ == "__main__":
    asyncio.run(main())
