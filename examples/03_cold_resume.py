"""The loop is a handle, the store is the truth: continue a session from a DSN and an id.

A separate process (here: a child Python) continues the conversation with nothing but
the database path and the session id; no state is carried over.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _support import example_llm

from power_loop import StatefulAgentLoop, create_llm_service_from_env

CHILD = """
import asyncio, sys
from power_loop import StatefulAgentLoop, create_llm_service_from_env

async def main(db, sid):
    loop = StatefulAgentLoop(llm=create_llm_service_from_env(), dsn=db)
    print("  [new process]", (await loop.send("What is my favorite color?", session_id=sid)).final_text)
    await loop.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def main() -> None:
    with example_llm() as llm, tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "resume.db")
        async with StatefulAgentLoop(llm=llm, dsn=db) as loop:
            sid = await loop.new_session()
            await loop.send("My favorite color is teal.", session_id=sid)
            print(f"session {sid} stored in {db}")
        env = dict(os.environ)
        base_url = getattr(llm, "config", None)
        if base_url is not None and not env.get("POWER_LOOP_API_KEY"):
            env.update(POWER_LOOP_BASE_URL=base_url.base_url, POWER_LOOP_API_KEY="fake-key",
                       POWER_LOOP_MODEL=base_url.model)
        subprocess.run([sys.executable, "-c", CHILD, db, sid], check=True, env=env)
        # and a cold loop in this process: a fresh handle, an empty cache, the same answer
        cold = StatefulAgentLoop(llm=create_llm_service_from_env() if env.get("POWER_LOOP_API_KEY") == os.environ.get(
            "POWER_LOOP_API_KEY") and os.environ.get("POWER_LOOP_API_KEY") else llm, dsn=db)
        print("  [cold loop]", len(await cold.get_messages(sid)), "messages, cache:", cold.cache_stats)
        await cold.aclose()


if __name__ == "__main__":
    asyncio.run(main())
