"""Tools: definitions, the registry, schemas from typed functions, validation and execution.

``import power_loop.tools`` stays cheap: the JSON Schema library is imported on the first
schema check or validation, not here.
"""

from power_loop.tools.definition import RegisteredTool, ToolDefinition, definition_from_function, tool
from power_loop.tools.execution import (
    DEFAULT_MAX_OUTPUT_CHARS,
    ToolErrorKind,
    ToolOutcome,
    execute_tool,
    format_handler_error,
    format_invalid_args,
    format_invalid_json,
    format_timeout,
    format_unknown_tool,
    parse_tool_arguments,
)
from power_loop.tools.registry import TOOL_NAME_PATTERN, ToolRegistry

_LAZY = {
    "function_schema": "power_loop.tools.schema",
    "SchemaProblem": "power_loop.tools.validation",
    "check_tool_schema": "power_loop.tools.validation",
    "schema_problems": "power_loop.tools.validation",
    "validate_arguments": "power_loop.tools.validation",
}


def __getattr__(name: str) -> object:
    """Schema generation and validation load on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'power_loop.tools' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "TOOL_NAME_PATTERN",
    "RegisteredTool",
    "SchemaProblem",
    "ToolDefinition",
    "ToolErrorKind",
    "ToolOutcome",
    "ToolRegistry",
    "check_tool_schema",
    "definition_from_function",
    "execute_tool",
    "format_handler_error",
    "format_invalid_args",
    "format_invalid_json",
    "format_timeout",
    "format_unknown_tool",
    "function_schema",
    "parse_tool_arguments",
    "schema_problems",
    "tool",
    "validate_arguments",
]
