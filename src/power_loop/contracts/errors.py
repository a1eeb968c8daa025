"""The PowerLoopError tree: every error the library raises, each with a frozen ``.code``.

Invariants: ``.code`` is a class attribute that never changes once released (tests pin
them); offending values are attributes; messages name the problem and, where there is
one, the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class PowerLoopError(Exception):
    """Root of every library error. Branch on ``.code``, a stable dotted string."""

    code: ClassVar[str] = "power_loop.error"

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only attributes, so the default ``cls(*self.args)``
        # cannot rebuild them (pickling across processes, ``copy.copy``): restore the
        # message args and the attributes without calling ``__init__``.
        return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))


class InvalidArgumentError(PowerLoopError, ValueError):
    """A bad argument without a more specific class."""

    code: ClassVar[str] = "invalid_argument"


class StoreConfigError(InvalidArgumentError):
    """Bad DSN or table prefix, or conflicting store arguments."""

    code: ClassVar[str] = "store.config_invalid"


class ToolDefinitionError(InvalidArgumentError):
    """Bad tool name or schema, or a duplicate registration."""

    code: ClassVar[str] = "tool.invalid_definition"


class UsageError(PowerLoopError, RuntimeError):
    """API misuse, such as the sync API called inside a running event loop."""

    code: ClassVar[str] = "usage.invalid"


class LoopClosedError(UsageError):
    """A call after ``aclose()``/``close()``."""

    code: ClassVar[str] = "loop.closed"


class MissingExtraError(PowerLoopError, ImportError):
    """An optional dependency is not installed; ``.extra`` names the extra to install."""

    code: ClassVar[str] = "extra.missing"

    def __init__(self, extra: str, *, feature: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{module}' package: pip install 'power-loop[{extra}]'"
        )


class SessionNotFoundError(PowerLoopError):
    """No session with this id exists in the store."""

    code: ClassVar[str] = "session.not_found"

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"session {session_id!r} does not exist")


class SessionPendingError(PowerLoopError):
    """The session has unresolved tool calls; a new send cannot start yet."""

    code: ClassVar[str] = "session.pending"

    def __init__(
        self,
        session_id: str,
        *,
        assistant_seq: int | None,
        pending_tool_calls: Sequence[dict[str, Any]],
        pending_interactions: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.session_id = session_id
        self.assistant_seq = assistant_seq
        self.pending_tool_calls = list(pending_tool_calls)
        self.pending_interactions = list(pending_interactions)
        names = ", ".join(
            str((c.get("function") or {}).get("name", "?")) for c in self.pending_tool_calls
        )
        unresolved = [f"{len(self.pending_tool_calls)} unresolved tool call(s) ({names})"]
        if self.pending_interactions:
            unresolved.append(f"{len(self.pending_interactions)} pending interaction(s)")
        super().__init__(
            f"session {session_id!r} has {' and '.join(unresolved)} from assistant message seq"
            f" {assistant_seq}: call resume() (or submit_input() for an interaction) to finish them,"
            " abort_pending() to close them, or send(..., heal_pending=True) to abort and continue"
        )


class SessionBusyError(PowerLoopError):
    """Another live process holds the session's lease."""

    code: ClassVar[str] = "session.busy"

    def __init__(self, session_id: str, *, holder: str | None, waited_s: float) -> None:
        self.session_id = session_id
        self.holder = holder
        super().__init__(
            f"session {session_id!r} is leased by {holder or 'another process'};"
            f" gave up after waiting {waited_s:.1f}s (AgentLoopConfig.lease_wait_s)"
        )


class LLMProviderError(PowerLoopError):
    """The provider answered with an error or could not be reached."""

    code: ClassVar[str] = "llm.provider_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        self.provider = provider
        self.status_code = status_code
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        super().__init__(message)


class LLMTimeout(PowerLoopError):
    """The retry policy's total timeout elapsed."""

    code: ClassVar[str] = "llm.timeout"

    def __init__(self, message: str, *, elapsed: float, attempts: int, total_timeout: float | None) -> None:
        self.elapsed = elapsed
        self.attempts = attempts
        self.total_timeout = total_timeout
        super().__init__(message)


class LLMRetryExhausted(PowerLoopError):
    """Every attempt the retry policy allows failed."""

    code: ClassVar[str] = "llm.retry_exhausted"

    def __init__(self, message: str, *, attempts: int, last_error: BaseException) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(message)


class CancellationRequested(PowerLoopError):
    """A cancellation token was set while waiting."""

    code: ClassVar[str] = "cancelled"

    def __init__(self, reason: str = "cancelled") -> None:
        self.reason = reason
        super().__init__(f"cancelled: {reason}")


class CompactionFailed(PowerLoopError):
    """Reserved: history cannot fit even after folding."""

    code: ClassVar[str] = "compaction.failed"


class ToolNotFound(PowerLoopError):
    """No tool with this name is registered (or offered)."""

    code: ClassVar[str] = "tool.not_found"

    def __init__(self, tool_name: str, *, known: Sequence[str] = ()) -> None:
        self.tool_name = tool_name
        hint = f"; registered tools: {', '.join(known)}" if known else ""
        super().__init__(f"unknown tool {tool_name!r}{hint}")


class ToolValidationError(PowerLoopError):
    """Tool arguments do not satisfy the tool's JSON Schema; ``.problems`` lists all."""

    code: ClassVar[str] = "tool.invalid_args"

    def __init__(self, tool_name: str, problems: Sequence[str]) -> None:
        self.tool_name = tool_name
        self.problems = list(problems)
        super().__init__(f"invalid arguments for tool {tool_name!r}: " + "; ".join(self.problems))


class AsyncToolInSyncContext(PowerLoopError, TypeError):
    """``ToolRegistry.invoke`` was called on an async handler."""

    code: ClassVar[str] = "tool.async_in_sync"


class HumanInputRequired(PowerLoopError):
    """Control signal raised by ``request_user_input``: the run pauses for a person."""

    code: ClassVar[str] = "input.required"


class SpecValidationError(PowerLoopError, ValueError):
    """A spec (agent, workflow) is invalid; ``.problems`` lists every problem."""

    code: ClassVar[str] = "spec.invalid"

    def __init__(self, message: str, *, field: str | None = None, problems: Sequence[str] = ()) -> None:
        self.field = field
        self.problems = list(problems) or [message]
        super().__init__(message)


class AgentSpecError(SpecValidationError):
    """An invalid ``AgentSpec``."""


class WorkflowSpecError(SpecValidationError):
    """An invalid workflow spec."""


class WorkflowRunError(PowerLoopError, RuntimeError):
    """A workflow cannot run: unresolved reference, unmatched branch, unknown run."""

    code: ClassVar[str] = "workflow.run_failed"


class WorkerBootstrapError(PowerLoopError):
    """A workflow worker cannot rebuild its LLM or tools."""

    code: ClassVar[str] = "workflow.worker_bootstrap"


class StructuredOutputError(PowerLoopError, ValueError):
    """A reply does not parse or validate against the requested schema."""

    code: ClassVar[str] = "structured_output.invalid"

    def __init__(self, message: str, *, reason: str, raw_text: str = "", detail: Any = None) -> None:
        self.reason = reason
        self.raw_text = raw_text
        self.detail = detail
        super().__init__(message)


class StoreSchemaError(PowerLoopError, RuntimeError):
    """The database schema is missing, old or newer than this code; ``.ddl`` provisions it."""

    code: ClassVar[str] = "store.schema"

    def __init__(self, message: str, *, ddl: Sequence[str] = ()) -> None:
        self.ddl = list(ddl)
        if self.ddl:
            message = message + "\n\n-- provisioning script:\n" + ";\n".join(self.ddl) + ";"
        super().__init__(message)


class StoreError(PowerLoopError):
    """A database operation failed (connection lost, constraint violated, driver error)."""

    code: ClassVar[str] = "store.error"


class StoreConnectError(StoreError):
    """The database server cannot be reached or refused the credentials."""

    code: ClassVar[str] = "store.connect_failed"


class RuntimeEnvError(PowerLoopError, RuntimeError):
    """A required workspace/home/skills path is missing."""

    code: ClassVar[str] = "runtime.env_missing"


class NotesFullError(PowerLoopError, ValueError):
    """Note limit reached with ``eviction="reject"``."""

    code: ClassVar[str] = "notes.full"


class BlackboardError(PowerLoopError, ValueError):
    """A bad blackboard operation."""

    code: ClassVar[str] = "blackboard.invalid"


def _rebuild_error(cls: type[PowerLoopError], args: tuple[Any, ...], state: dict[str, Any]) -> PowerLoopError:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


ERROR_CODES: dict[str, str] = {
    cls.__name__: cls.code
    for cls in (
        PowerLoopError, InvalidArgumentError, StoreConfigError, ToolDefinitionError, UsageError,
        LoopClosedError, MissingExtraError, SessionNotFoundError, SessionPendingError,
        SessionBusyError, LLMProviderError, LLMTimeout, LLMRetryExhausted, CancellationRequested,
        CompactionFailed, ToolNotFound, ToolValidationError, AsyncToolInSyncContext,
        HumanInputRequired, SpecValidationError, AgentSpecError, WorkflowSpecError,
        WorkflowRunError, WorkerBootstrapError, StructuredOutputError, StoreSchemaError,
        StoreError, StoreConnectError, RuntimeEnvError, NotesFullError, BlackboardError,
    )
}
"""Every error class name mapped to its frozen code (pinned by tests/test_public_api.py)."""
