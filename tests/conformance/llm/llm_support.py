"""Helpers shared by the transport conformance tests (a plain module: tests/ has no packages).

Only the package, pytest, pytest-asyncio and the two SDKs are needed here: these tests
also run in the pinned environment with the previous SDK majors (``dev.py test``).
"""

from __future__ import annotations

from typing import Any

from power_loop.llm.config import LLMProviderConfig, create_llm_service_from_config
from power_loop.llm.contract import LLMRequest, LLMResponse, LLMService
from power_loop.testing import FakeLLMServer

PROVIDERS = ("openai", "anthropic")

ADD: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
READ_FILE: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "fs.read_file",
        "description": "Read a file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
PERSON_FORMAT: dict[str, Any] = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}


def config(server: FakeLLMServer, provider: str, **kwargs: Any) -> LLMProviderConfig:
    """A config for ``provider`` pointing at ``server``."""
    values: dict[str, Any] = {
        "base_url": server.base_url if provider == "openai" else server.anthropic_base_url,
        "api_key": "test-key",
        "model": "fake-model",
        "provider": provider,
        "timeout_s": 5.0,
        **kwargs,
    }
    return LLMProviderConfig(**values)


def service(server: FakeLLMServer, provider: str, **kwargs: Any) -> LLMService:
    """The transport for ``provider`` over ``server``."""
    return create_llm_service_from_config(config(server, provider, **kwargs))


def prompt(text: str, **kwargs: Any) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": text}], **kwargs)


def essentials(response: LLMResponse) -> dict[str, Any]:
    """What must be equal between a streamed and a plain answer."""
    return {
        "content_text": response.content_text,
        "think": response.think,
        "tool_calls": response.tool_calls,
        "finish_reason": response.finish_reason,
        "model": response.model,
        "token_usage": response.token_usage,
    }


async def collect(llm: LLMService, request: LLMRequest) -> tuple[LLMResponse, list[str]]:
    """``complete`` streamed: the response and the text deltas."""
    deltas: list[str] = []
    response = await llm.complete(request, on_chunk_delta_text=deltas.append)
    return response, deltas
