"""The Anthropic Messages API: same loop, same tools, another provider.

Select it with ``POWER_LOOP_PROVIDER=anthropic`` (``POWER_LOOP_BASE_URL`` is the API root,
e.g. https://api.anthropic.com) or ``LLMProviderConfig(provider="anthropic", ...)``. Tool
definitions, tool_use/tool_result blocks, the system prompt and usage are mapped for you;
registry names such as ``unit.convert`` go out as legal wire names and come back as is.
"""

import asyncio
import tempfile
from pathlib import Path

from _support import example_llm

from power_loop import AgentLoopConfig, StatefulAgentLoop, ToolRegistry

registry = ToolRegistry()


@registry.tool(name="unit.convert")
def convert(value: float, unit: str) -> str:
    """Convert a temperature between celsius and fahrenheit.

    Args:
        value: The temperature.
        unit: The unit of ``value``: "c" or "f".
    """
    return f"{value * 9 / 5 + 32:.1f} F" if unit == "c" else f"{(value - 32) * 5 / 9:.1f} C"


async def main() -> None:
    with example_llm(provider="anthropic") as llm, tempfile.TemporaryDirectory() as tmp:
        config = AgentLoopConfig(system_prompt="You convert temperatures with the tool.", max_tokens=1024)
        async with StatefulAgentLoop(llm=llm, dsn=str(Path(tmp) / "claude.db"), tool_registry=registry,
                                     config=config) as loop:
            sid = await loop.new_session()
            result = await loop.send("Please call unit_convert value=21 unit=c", session_id=sid)
            provider = getattr(llm, "provider", "?")
            print(f"provider={provider} status={result.status} tools={result.tool_calls}")
            print(result.final_text)
            for message in await loop.get_messages(sid):
                calls = [c["function"]["name"] for c in message.get("tool_calls") or ()]
                print(f"  {message['role']:<9} {calls or message['content']}")
            print(f"usage: {result.usage}")


if __name__ == "__main__":
    asyncio.run(main())
