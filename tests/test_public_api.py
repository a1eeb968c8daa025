"""The public contract: STABLE_API exactly as API.md §1, __all__ sorted and complete, and
the stable names' signatures, fields, enum values and error codes never shrink."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import power_loop
from api_snapshot import SNAPSHOT, build

EXPECTED_STABLE = [
    "StatefulAgentLoop",
    "StatefulResult",
    "FollowUpQueued",
    "AgentLoopConfig",
    "SessionStore",
    "SubagentLifecycle",
    "PowerLoopError",
    "SessionNotFoundError",
    "SessionPendingError",
    "LLMTimeout",
    "LLMRetryExhausted",
    "CancellationRequested",
    "ToolNotFound",
    "ToolValidationError",
    "SpecValidationError",
    "LLMRetryPolicy",
    "CancellationToken",
    "AgentHooks",
    "AgentEventBus",
    "AgentEvent",
    "AgentEventType",
    "HookPoint",
    "HookDirective",
    "ToolRegistry",
    "ToolDefinition",
    "LLMService",
    "LLMRequest",
    "LLMResponse",
    "LLMStreamChunk",
    "LLMTokenUsage",
    "LLMProviderConfig",
    "create_llm_service_from_env",
    "create_llm_service_from_config",
]


def test_stable_api_is_exactly_the_contract() -> None:
    assert list(power_loop.STABLE_API) == EXPECTED_STABLE
    for name in power_loop.STABLE_API:
        assert hasattr(power_loop, name), name


def test_all_is_sorted_complete_and_importable() -> None:
    names = power_loop.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(power_loop, name), name
    public = {n for n in vars(power_loop) if not n.startswith("_") and not isinstance(getattr(power_loop, n),
                                                                                      type(sys))}
    missing = public - set(names) - {"annotations"}
    assert not missing, f"public names missing from __all__: {sorted(missing)}"
    assert set(power_loop.STABLE_API) <= set(names)


def _compatible(old: Any, new: Any, path: str, problems: list[str]) -> None:
    """Everything in ``old`` still holds in ``new`` (additions are fine)."""
    if isinstance(old, dict):
        if not isinstance(new, dict):
            problems.append(f"{path}: changed shape")
            return
        for key, value in old.items():
            if key not in new:
                problems.append(f"{path}.{key}: removed")
            else:
                _compatible(value, new[key], f"{path}.{key}", problems)
    elif isinstance(old, list) and old and isinstance(old[0], dict) and "kind" in old[0]:
        new_by_name = {p["name"]: p for p in new}
        for index, param in enumerate(old):
            current = new_by_name.get(param["name"])
            if current is None:
                problems.append(f"{path}: parameter {param['name']!r} removed or renamed")
            elif current != param:
                problems.append(f"{path}: parameter {param['name']!r} changed {param} -> {current}")
            elif param["kind"] == "POSITIONAL_OR_KEYWORD" and new.index(current) != index:
                problems.append(f"{path}: parameter {param['name']!r} moved")
        for param in new:
            if param["name"] not in {p["name"] for p in old} and param["default"] is None and \
                    param["kind"] not in ("VAR_POSITIONAL", "VAR_KEYWORD"):
                problems.append(f"{path}: new parameter {param['name']!r} has no default")
    elif isinstance(old, list):
        missing = [x for x in old if x not in new]
        if missing:
            problems.append(f"{path}: removed {missing}")
    elif old != new:
        problems.append(f"{path}: {old!r} -> {new!r}")


def test_stable_surface_only_grows() -> None:
    snapshot = json.loads(SNAPSHOT.read_text())
    problems: list[str] = []
    _compatible(snapshot, build(), "power_loop", problems)
    assert not problems, "breaking changes to the stable API:\n" + "\n".join(problems)


def test_compatibility_check_catches_a_removed_parameter() -> None:
    old = {"f": {"kind": "function", "params": [{"name": "x", "kind": "KEYWORD_ONLY", "default": "1"}]}}
    new = {"f": {"kind": "function", "params": []}}
    problems: list[str] = []
    _compatible(old, new, "p", problems)
    assert problems == ["p.f.params: parameter 'x' removed or renamed"]


def test_import_is_light_and_loads_no_sdk() -> None:
    code = ("import sys; import power_loop; "
            "print(sorted(m for m in ('openai','anthropic','httpx','httpx2','asyncpg','aiomysql','jsonschema',"
            "'tenacity','pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
