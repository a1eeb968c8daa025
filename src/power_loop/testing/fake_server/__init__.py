"""A fake LLM provider over real HTTP, for tests, demos and benchmarks without an API key.

``FakeLLMServer`` serves the OpenAI Chat Completions API and the Anthropic Messages API
from one deterministic ``Brain`` (rules documented in
``power_loop.testing.fake_server.rules``), records requests and plays injected
``Fault``s. Run it standalone with ``python -m power_loop.testing.fake_server --port 0``.
"""

from power_loop.testing.fake_server.cli import main
from power_loop.testing.fake_server.faults import FAULT_HEADER, Fault, FaultKind, parse_fault_header
from power_loop.testing.fake_server.rules import Brain, BrainReply, Rule, ToolCallSpec, ToolSpec
from power_loop.testing.fake_server.server import FakeLLMServer, RecordedRequest

__all__ = [
    "FAULT_HEADER",
    "Brain",
    "BrainReply",
    "FakeLLMServer",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "Rule",
    "ToolCallSpec",
    "ToolSpec",
    "main",
    "parse_fault_header",
]
