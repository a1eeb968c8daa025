"""What users need to test their own agents: a scripted LLM and a fake LLM server.

``ScriptedLLM`` plays queued replies in-process (unit tests); ``FakeLLMServer`` serves a
deterministic OpenAI-compatible API over real HTTP (integration tests, demos,
benchmarks), with injectable faults.
"""

from power_loop.testing.fake_server import (
    FAULT_HEADER,
    Brain,
    BrainReply,
    FakeLLMServer,
    Fault,
    FaultKind,
    RecordedRequest,
    Rule,
    ToolCallSpec,
    ToolSpec,
)
from power_loop.testing.scripted import (
    ScriptedLLM,
    ScriptedReply,
    ScriptedToolCalls,
    ScriptExhaustedError,
    ScriptItem,
)

__all__ = [
    "FAULT_HEADER",
    "Brain",
    "BrainReply",
    "FakeLLMServer",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "Rule",
    "ScriptExhaustedError",
    "ScriptItem",
    "ScriptedLLM",
    "ScriptedReply",
    "ScriptedToolCalls",
    "ToolCallSpec",
    "ToolSpec",
]
