"""Streaming: text deltas as events on the bus, tool-call argument deltas as typed chunks.

Subscribing to a stream event makes the loop stream (``AgentLoopConfig(stream=True)``
forces it). The assembled answer is the same as without streaming, on both providers.
"""

import asyncio
import sys
import tempfile
from pathlib import Path

from _support import example_llm

from power_loop import AgentEvent, AgentEventBus, AgentEventType, LLMRequest, StatefulAgentLoop

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def on_event(event: AgentEvent) -> None:
    if event.type is AgentEventType.STREAM_STARTED:
        sys.stdout.write("  streaming: ")
    elif event.type is AgentEventType.STREAM_DELTA:
        sys.stdout.write(event.payload["text"] + "|")  # "|" marks each delta
    elif event.type is AgentEventType.STREAM_COMPLETED:
        sys.stdout.write("\n")
    sys.stdout.flush()


async def main() -> None:
    bus = AgentEventBus()
    for etype in (AgentEventType.STREAM_STARTED, AgentEventType.STREAM_DELTA,
                  AgentEventType.STREAM_COMPLETED):
        bus.subscribe(etype, on_event)
    with example_llm() as llm, tempfile.TemporaryDirectory() as tmp:
        async with StatefulAgentLoop(llm=llm, dsn=str(Path(tmp) / "stream.db"), event_bus=bus) as loop:
            sid = await loop.new_session()
            result = await loop.send("Tell me a short sentence about rivers and the sea.", session_id=sid)
            print(f"final text: {result.final_text}")

        # Lower level: LLMService.stream() yields typed chunks, tool-call argument
        # fragments included, and a final chunk with the assembled calls and usage.
        request = LLMRequest(messages=[{"role": "user", "content": "What is the weather in Lisbon?"}],
                             tools=[WEATHER])
        async for chunk in llm.stream(request):
            for delta in chunk.delta_tool_calls or ():
                print(f"  tool-call delta #{delta['index']}: {delta['function']}")
            if chunk.is_final:
                print(f"  assembled: {chunk.tool_calls}")


if __name__ == "__main__":
    asyncio.run(main())
