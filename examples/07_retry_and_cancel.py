"""Retries, degraded runs and cancellation, shown against the fake server's faults.

Always uses the bundled fake server: faults are injected on purpose. A 429 with
Retry-After is retried after exactly that wait; a 400 is never retried and the run ends
``degraded`` (the session stays usable); a stop_event cancels a send mid-stream.
"""

import asyncio
import tempfile
import time
from pathlib import Path

from _support import fake_llm

from power_loop import (
    AgentEvent,
    AgentEventBus,
    AgentEventType,
    AgentLoopConfig,
    CancellationToken,
    LLMRetryPolicy,
    StatefulAgentLoop,
)
from power_loop.testing import FakeLLMServer, Fault


async def main() -> None:
    bus = AgentEventBus()
    token = CancellationToken()
    armed = False  # cancel on the first delta of the third send only

    def show(event: AgentEvent) -> None:
        nonlocal armed
        p = event.payload
        if event.type is AgentEventType.LLM_RETRY_ATTEMPTED:
            print(f"  retry after attempt {p['attempt']}: sleeping {p['next_sleep_seconds']}s"
                  f" ({p['error_type']})")
        elif event.type is AgentEventType.LLM_DEGRADED:
            print(f"  degraded: {p['reason']} after {p['attempts']} attempt(s)")
        elif event.type is AgentEventType.STREAM_DELTA and armed and not token.is_cancelled():
            print(f"  first delta {p['text']!r}: cancelling")
            token.cancel("user pressed stop")

    for etype in (AgentEventType.LLM_RETRY_ATTEMPTED, AgentEventType.LLM_DEGRADED,
                  AgentEventType.STREAM_DELTA):
        bus.subscribe(etype, show)
    policy = LLMRetryPolicy(max_attempts=3, backoff_initial=0.1, backoff_max=5.0, total_timeout=30.0)
    with FakeLLMServer() as server, tempfile.TemporaryDirectory() as tmp:
        print(f"(fake server at {server.url}: faults are injected on purpose)")
        llm = fake_llm(server)
        async with StatefulAgentLoop(llm=llm, dsn=str(Path(tmp) / "faults.db"), event_bus=bus,
                                     config=AgentLoopConfig(retry_policy=policy)) as loop:
            sid = await loop.new_session()

            server.inject_fault(Fault("http_error", status=429, retry_after_s=0.5))
            started = time.monotonic()
            result = await loop.send("hello after a rate limit", session_id=sid)
            print(f"1) {result.status} in {time.monotonic() - started:.2f}s: {result.final_text}")

            server.inject_fault(Fault("http_error", status=400, message="unsupported parameter"))
            result = await loop.send("this request is refused", session_id=sid)
            print(f"2) {result.status}: {result.final_text}")

            server.inject_fault(Fault("slow_stream", delay_s=0.2))
            armed = True
            started = time.monotonic()
            result = await loop.send("a long answer, streamed slowly, that we stop", session_id=sid,
                                     stop_event=token)
            print(f"3) {result.status} after {time.monotonic() - started:.2f}s")

            result = await loop.send("still there?", session_id=sid)
            print(f"4) {result.status}: {result.final_text}")
            print(f"   {len(await loop.get_messages(sid))} messages stored, nothing pending:"
                  f" {await loop.get_pending(sid) is None}")
        await llm.close()


if __name__ == "__main__":
    asyncio.run(main())
