"""The smallest durable agent: one session, one send."""

import asyncio
import tempfile
from pathlib import Path

from _support import example_llm

from power_loop import AgentLoopConfig, StatefulAgentLoop


async def main() -> None:
    with example_llm() as llm, tempfile.TemporaryDirectory() as tmp:
        async with StatefulAgentLoop(
            llm=llm,
            dsn=str(Path(tmp) / "hello.db"),
            config=AgentLoopConfig(system_prompt="You are a concise assistant.", max_rounds=4),
        ) as loop:
            sid = await loop.new_session(metadata={"user_id": "demo"})
            result = await loop.send("Hello! Who are you?", session_id=sid)
            print(f"status={result.status} rounds={result.rounds} usage={result.usage}")
            print(result.final_text)


if __name__ == "__main__":
    asyncio.run(main())
