"""Every send is persisted, so later sends see the whole conversation."""

import asyncio
import tempfile
from pathlib import Path

from _support import example_llm

from power_loop import StatefulAgentLoop


async def main() -> None:
    with example_llm() as llm, tempfile.TemporaryDirectory() as tmp:
        async with StatefulAgentLoop(llm=llm, dsn=str(Path(tmp) / "memory.db")) as loop:
            sid = await loop.new_session()
            await loop.send("My favorite color is teal.", session_id=sid)
            answer = await loop.send("What is my favorite color?", session_id=sid)
            print(answer.final_text)
            for message in await loop.get_messages(sid):
                print(f"  {message['role']:<9} {message['content']}")


if __name__ == "__main__":
    asyncio.run(main())
