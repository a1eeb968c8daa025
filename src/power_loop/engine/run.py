"""One run of the agent loop: rounds of LLM call → assistant message → tool calls.

Steps, each a function: ``open_run`` (heal / leftover follow-ups / user input, one
commit), then per round ``prepare_round`` → ``call_llm`` → ``record_round`` →
``run_tool_calls``, then ``finish_run``. Stops on a tool-free answer, ``max_rounds``,
the token budget, cancellation, a hook BREAK or an LLM failure (status ``degraded``).
Every message is committed when it exists; the store never holds an assistant turn
whose calls a later run cannot identify as unresolved (derived from the messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from power_loop.contracts.errors import StructuredOutputError
from power_loop.contracts.events import (
    AgentErrorPayload,
    AgentEventType,
    LLMDegradedPayload,
    LoopCancelledPayload,
    RoundCompletedPayload,
    RoundStartedPayload,
    RoundToolsPresentPayload,
    SessionEndedPayload,
    SessionStartedPayload,
    StatusChangedPayload,
)
from power_loop.contracts.hooks import (
    HookDirective,
    HookPoint,
    LLMAfterCtx,
    LLMBeforeCtx,
    RoundDecideCtx,
    RoundEndCtx,
    RoundStartCtx,
    SessionEndCtx,
    SessionStartCtx,
    ToolsBatchAfterCtx,
    ToolsBatchBeforeCtx,
)
from power_loop.contracts.json import JSONObject, Message
from power_loop.engine.context import RunContext
from power_loop.engine.llm_call import call_llm
from power_loop.engine.result import RunStatus, StatefulResult
from power_loop.engine.tool_calls import answer_calls, run_tool_calls
from power_loop.engine.window import own_copy
from power_loop.llm.contract import LLMRequest, LLMResponse
from power_loop.llm.structured import StructuredOutputSpec, parse_structured, repair_prompt
from power_loop.store.codec import storable
from power_loop.store.leases import LeaseLostError
from power_loop.store.port import WriteConflict

HEALED_RESULT = "<aborted: auto-healed by send(heal_pending=True)>"
ROUND_DECIDE_SKIPPED = "<skipped: round.decide hook>"


class StaleWindowError(Exception):
    """The run's opening write found the session moved on (another writer appended, or
    another process took the lease).

    Nothing was written and nothing was emitted: the caller (re-acquires the lease,)
    reloads the window and starts the run again.
    """

    def __init__(self, message: str, *, lease_lost: bool = False) -> None:
        self.lease_lost = lease_lost
        super().__init__(message)


class _Run:
    """The mutable state of one run; methods are the named steps."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.round_no = 0
        self.status: RunStatus | None = None
        self.overlay: list[Message] | None = None
        self.overlay_base = 0
        spec = ctx.config.output_schema
        self.spec = spec if isinstance(spec, StructuredOutputSpec) else None
        self.response_format = ctx.config.response_format or (
            self.spec.to_openai_response_format() if self.spec is not None else None)
        self.tool_choice = ctx.config.tool_choice
        """Reset to the provider's default after the first tool round when it forces a call,
        so that ``"required"`` or a tool name cannot make the model loop on tools."""
        self.natural_final = False
        """The run ended on the model's own answer (not a hook's), so a repair may follow."""
        self.structured: JSONObject | None = None
        self.structured_error: str | None = None

    # -- request --------------------------------------------------------------------------
    def history(self) -> list[Message]:
        msgs = self.ctx.window.messages
        if self.overlay is None:
            return list(msgs)
        return self.overlay + msgs[self.overlay_base:]

    def request(self, *, with_tools: bool = True) -> LLMRequest:
        cfg = self.ctx.config
        tools = self.ctx.tools_payload if with_tools else None
        window = self.ctx.window
        wire_safe = self.overlay is None and window.wire_safe
        return LLMRequest(
            messages=self.history(), system_prompt=self.ctx.system_prompt, model=cfg.model,
            temperature=cfg.temperature, max_tokens=cfg.max_tokens, tools=tools,
            tool_choice=self.tool_choice if tools else None, response_format=self.response_format,
            history_wire_safe=wire_safe, history_encoded=window.take_encoded() if wire_safe else None,
        )

    # -- steps ----------------------------------------------------------------------------
    async def session_start(self) -> None:
        ctx = self.ctx
        ctx.emit(AgentEventType.SESSION_STARTED, SessionStartedPayload(scope="send"))
        if ctx.hooks.has(HookPoint.SESSION_START):
            original = ctx.window.messages
            sctx = SessionStartCtx(messages=own_copy(original), stop_event=ctx.token, session_id=ctx.session_id)
            await ctx.hooks.run(HookPoint.SESSION_START, sctx)
            if sctx.messages != original:
                self.overlay, self.overlay_base = list(sctx.messages), len(original)

    async def drain_follow_ups(self) -> bool:
        """Append queued follow-ups as one user message; return whether any were drained."""
        ctx = self.ctx
        signal = ctx.follow_up_signal
        if signal is None or not signal.is_set():
            return False
        signal.clear()
        rows = await ctx.store.list_follow_ups(ctx.session_id)
        if not rows:
            return False
        message = {"role": "user", "content": follow_up_content([r.content for r in rows])}
        if not ctx.lease_released:
            await ctx.append([message], round_index=self.round_no or None,
                             consume_follow_ups=[r.follow_up_id for r in rows])
            return True
        # The final answer let the lease go (these inputs came after it): go on only if it
        # can be re-taken unchanged. If another send took the session meanwhile, this run
        # is over and the inputs stay queued for that send, whose appends see them.
        try:
            await ctx.append([message], round_index=self.round_no or None,
                             consume_follow_ups=[r.follow_up_id for r in rows])
        except (LeaseLostError, WriteConflict):
            return False
        return True

    async def round_start(self) -> HookDirective:
        ctx = self.ctx
        ctx.emit(AgentEventType.ROUND_STARTED, RoundStartedPayload(
            round_index=self.round_no, has_tools=bool(ctx.tools_payload)), round_index=self.round_no)
        if not ctx.hooks.has(HookPoint.ROUND_START):
            return HookDirective.CONTINUE
        rctx = RoundStartCtx(messages=own_copy(self.history()), stop_event=ctx.token, round_index=self.round_no,
                             session_id=ctx.session_id)
        return await ctx.hooks.run(HookPoint.ROUND_START, rctx)

    async def llm_step(self, *, with_tools: bool = True) -> tuple[LLMResponse | None, bool]:
        """Call the LLM (or a hook's SHORT_CIRCUIT output); return (response, break_after)."""
        ctx = self.ctx
        request = self.request(with_tools=with_tools)
        if ctx.hooks.has(HookPoint.LLM_BEFORE):
            bctx = LLMBeforeCtx(messages=own_copy(request.messages), system_prompt=request.system_prompt,
                                tools=request.tools, max_tokens=request.max_tokens,
                                temperature=request.temperature, round_index=self.round_no,
                                session_id=ctx.session_id)
            directive = await ctx.hooks.run(HookPoint.LLM_BEFORE, bctx)
            if directive is HookDirective.BREAK:
                self.status = RunStatus.COMPLETED
                return None, True
            if directive is HookDirective.SHORT_CIRCUIT and isinstance(bctx.output, LLMResponse):
                return await self.llm_after(bctx.output)
            request = LLMRequest(
                messages=bctx.messages, system_prompt=bctx.system_prompt, model=request.model,
                temperature=bctx.temperature, max_tokens=bctx.max_tokens, tools=bctx.tools,
                tool_choice=request.tool_choice if bctx.tools else None,
                response_format=request.response_format,
            )
        if ctx.has_stop_event and ctx.token.is_cancelled():
            self.status = RunStatus.CANCELLED
            return None, True
        ctx.rounds += 1
        outcome = await call_llm(ctx, request, round_index=self.round_no)
        if outcome.cancelled:
            self.status = RunStatus.CANCELLED
            return None, True
        if outcome.response is None:
            await self.degrade(outcome.degraded_reason or "provider_error", outcome.error, outcome.attempts)
            return None, True
        return await self.llm_after(outcome.response)

    async def llm_after(self, response: LLMResponse) -> tuple[LLMResponse, bool]:
        ctx = self.ctx
        if not ctx.hooks.has(HookPoint.LLM_AFTER):
            return response, False
        actx = LLMAfterCtx(messages=self.history(), output=response, round_index=self.round_no,
                           session_id=ctx.session_id)
        directive = await ctx.hooks.run(HookPoint.LLM_AFTER, actx)
        out = actx.output if isinstance(actx.output, LLMResponse) else response
        return out, directive is HookDirective.BREAK

    async def degrade(self, reason: str, error: BaseException | None, attempts: int) -> None:
        ctx = self.ctx
        etype = type(error).__name__ if error is not None else "Error"
        ctx.emit(AgentEventType.LLM_DEGRADED, LLMDegradedPayload(
            reason=reason, attempts=attempts, error_type=etype, error_message=str(error)[:500]),
            round_index=self.round_no)
        text = f"[degraded: LLM {reason.replace('_', ' ')} — {etype}: {error}]"
        await ctx.append([{"role": "assistant", "content": text}], round_index=self.round_no, final=True)
        ctx.final_text = text
        self.status = RunStatus.DEGRADED

    async def record_final(self, response: LLMResponse, *, natural: bool) -> None:
        """Append the answer. It is not final (the lease is kept) when the run is known to
        go on: follow-ups are waiting, or a structured answer that fails will be repaired."""
        text = storable(response.content_text)
        signal = self.ctx.follow_up_signal
        final = (signal is None or not signal.is_set()) and not (natural and self.repair_follows(text))
        await self.ctx.append([{"role": "assistant", "content": text}], round_index=self.round_no, final=final)
        self.ctx.final_text = text
        self.natural_final = natural

    def repair_follows(self, text: str) -> bool:
        """``structured_output`` will send ``text`` back for repair (see there)."""
        spec = self.spec
        if spec is None:
            return False
        budget = self.ctx.config.max_tokens_per_run
        if budget is not None and self.ctx.spent_tokens >= budget:
            return False
        try:
            parse_structured(text, schema=spec.schema)
        except StructuredOutputError:
            return True
        return False

    async def tools_round(self, response: LLMResponse) -> bool:
        """Persist the tool-calling turn and answer its calls; return False to end the run."""
        ctx = self.ctx
        calls = with_unique_ids(storable([dict(c) for c in response.tool_calls]), self.round_no)
        await ctx.append([{"role": "assistant", "content": storable(response.content_text) or None,
                           "tool_calls": calls}],
                         round_index=self.round_no, probe=False)
        if response.content_text:
            ctx.final_text = response.content_text
        ctx.emit(AgentEventType.ROUND_TOOLS_PRESENT, RoundToolsPresentPayload(has_tools=True),
                 round_index=self.round_no)
        if ctx.registry is None:
            self.status = RunStatus.PENDING_TOOLS
            return False
        hooks = ctx.hooks
        if hooks.has(HookPoint.ROUND_DECIDE):
            dctx = RoundDecideCtx(messages=self.history(), tool_calls=calls, assistant_text=response.content_text,
                                  round_index=self.round_no, session_id=ctx.session_id)
            directive = await hooks.run(HookPoint.ROUND_DECIDE, dctx)
            if directive is HookDirective.SKIP:
                await answer_calls(ctx, calls, str(dctx.output or ""), round_index=self.round_no)
                return True
            if directive is HookDirective.BREAK:
                await answer_calls(ctx, calls, ROUND_DECIDE_SKIPPED, round_index=self.round_no)
                self.status = RunStatus.COMPLETED
                return False
        if hooks.has(HookPoint.TOOLS_BATCH_BEFORE):
            bctx = ToolsBatchBeforeCtx(messages=self.history(), tool_calls=calls, round_index=self.round_no,
                                       session_id=ctx.session_id)
            if await hooks.run(HookPoint.TOOLS_BATCH_BEFORE, bctx) is HookDirective.SKIP:
                await answer_calls(ctx, calls, str(bctx.output or ""), round_index=self.round_no)
                return True
        await run_tool_calls(ctx, calls, round_index=self.round_no)
        if hooks.has(HookPoint.TOOLS_BATCH_AFTER):
            await hooks.run(HookPoint.TOOLS_BATCH_AFTER, ToolsBatchAfterCtx(
                messages=self.history(), round_index=self.round_no, session_id=ctx.session_id))
        return True

    async def round_end(self, *, has_tools: bool, text: str) -> None:
        ctx = self.ctx
        if ctx.hooks.has(HookPoint.ROUND_END):
            await ctx.hooks.run(HookPoint.ROUND_END, RoundEndCtx(
                messages=self.history(), has_tools=has_tools, response_text=text, round_index=self.round_no,
                session_id=ctx.session_id))
        ctx.emit(AgentEventType.ROUND_COMPLETED, RoundCompletedPayload(
            round_index=self.round_no, has_tools=has_tools), round_index=self.round_no)

    async def round_limit(self) -> None:
        """All rounds ended in tool calls: note it, then one final tool-free call."""
        ctx = self.ctx
        max_rounds = ctx.config.max_rounds
        note = ctx.config.round_limit_note.format(max_rounds=max_rounds)
        await ctx.append([{"role": "user", "content": note}], round_index=self.round_no)
        ctx.emit(AgentEventType.STATUS_CHANGED, StatusChangedPayload(kind="hit_round_limit", max_rounds=max_rounds))
        self.round_no += 1
        response, break_after = await self.llm_step(with_tools=False)
        if response is not None:
            await self.record_final(response, natural=not break_after)
        if self.status is None:
            self.status = RunStatus.HIT_ROUND_LIMIT

    def budget_exceeded(self) -> bool:
        budget = self.ctx.config.max_tokens_per_run
        if budget is None or self.ctx.spent_tokens < budget:
            return False
        self.ctx.emit(AgentEventType.STATUS_CHANGED, StatusChangedPayload(
            kind="budget_exceeded", budget_tokens=budget, spent_tokens=self.ctx.spent_tokens))
        return True

    # -- the loop -------------------------------------------------------------------------
    async def rounds(self) -> None:
        ctx = self.ctx
        max_rounds = ctx.config.max_rounds
        while self.status is None:
            if self.round_no >= 1 and self.budget_exceeded():  # before the round limit: no further call
                self.status = RunStatus.BUDGET_EXCEEDED
                return
            if self.round_no >= max_rounds:
                await self.round_limit()
                return
            if ctx.token.is_cancelled():
                self.status = RunStatus.CANCELLED
                return
            await self.drain_follow_ups()
            self.round_no += 1
            directive = await self.round_start()
            if directive is HookDirective.BREAK:
                self.status = RunStatus.COMPLETED
                return
            if directive is HookDirective.SKIP:
                continue
            response, break_after = await self.llm_step()
            if response is None:
                return
            if not response.tool_calls or break_after:
                await self.record_final(response, natural=not break_after)
                await self.round_end(has_tools=False, text=response.content_text)
                if not break_after and await self.drain_follow_ups():
                    continue
                self.status = RunStatus.COMPLETED
                return
            keep_going = await self.tools_round(response)
            if self.tool_choice is not None and _forces_a_call(self.tool_choice):
                self.tool_choice = None
            await self.round_end(has_tools=True, text=response.content_text)
            if not keep_going:
                return
            if ctx.token.is_cancelled():
                self.status = RunStatus.CANCELLED
                return

    # -- structured output ----------------------------------------------------------------
    def parse_structured(self, spec: StructuredOutputSpec) -> StructuredOutputError | None:
        try:
            self.structured = parse_structured(self.ctx.final_text, schema=spec.schema)
            self.structured_error = None
        except StructuredOutputError as exc:
            self.structured, self.structured_error = None, exc.reason
            return exc
        return None

    async def structured_output(self) -> None:
        """Parse the final answer; an invalid one is sent back once for repair (one more call)."""
        spec = self.spec
        if spec is None or self.status not in (RunStatus.COMPLETED, RunStatus.HIT_ROUND_LIMIT):
            return
        error = self.parse_structured(spec)
        budget = self.ctx.config.max_tokens_per_run
        over_budget = budget is not None and self.ctx.spent_tokens >= budget
        if error is None or not self.natural_final or over_budget:
            return
        repair = {"role": "user", "content": repair_prompt(error, spec)}
        await self.ctx.append([repair], round_index=self.round_no)
        self.round_no += 1
        self.natural_final = False
        response, _ = await self.llm_step(with_tools=False)
        if response is not None:
            await self.record_final(response, natural=False)  # no second repair
            self.parse_structured(spec)

    async def finish(self) -> StatefulResult:
        ctx = self.ctx
        status = self.status or RunStatus.COMPLETED
        if status is RunStatus.CANCELLED:
            ctx.emit(AgentEventType.LOOP_CANCELLED, LoopCancelledPayload(reason=ctx.token.reason))
        await ctx.settle()
        pending = ctx.window.pending()
        pending_calls = own_copy(pending.tool_calls) if pending is not None else []  # the caller's to edit
        if ctx.hooks.has(HookPoint.SESSION_END):
            await ctx.hooks.run(HookPoint.SESSION_END, SessionEndCtx(
                reason=status.value, messages=self.history(), final_text=ctx.final_text,
                round_index=self.round_no, session_id=ctx.session_id))
        ctx.emit(AgentEventType.SESSION_ENDED, SessionEndedPayload(reason=status.value, status=status.value))
        return StatefulResult(
            session_id=ctx.session_id, status=status.value, final_text=ctx.final_text, rounds=ctx.rounds,
            pending_tool_calls=pending_calls, usage=dict(ctx.usage), tool_calls=ctx.tool_calls_executed,
            structured=self.structured, structured_error=self.structured_error,
            send_index=ctx.send_index,
        )


def with_unique_ids(calls: list[JSONObject], round_no: int) -> list[JSONObject]:
    """``calls`` where each has an id no other in the turn has: a call without one (or
    repeating one) could never be matched by its result, so the session would stay
    pending (or a crash could hide an unexecuted call). The shipped transports always
    give ids; a custom ``LLMService`` may not."""
    seen: set[str] = set()
    for i, call in enumerate(calls):
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id or call_id in seen:
            call_id = f"call_r{round_no}_{i}"
            while call_id in seen:
                call_id += "_"
            call["id"] = call_id
        seen.add(call_id)
    return calls


def follow_up_content(contents: list[Any]) -> str | list[JSONObject]:
    """The user message content of drained follow-ups, in queue order, wrapped in
    ``<follow_up>`` tags: plain text when every input is text, else content parts (an
    input's parts kept as they are, so an image stays an image)."""
    if all(isinstance(c, str) for c in contents):
        return "<follow_up>\n" + "\n".join(contents) + "\n</follow_up>"
    parts: list[JSONObject] = [{"type": "text", "text": "<follow_up>"}]
    for content in contents:
        if isinstance(content, list):
            parts.extend(p if isinstance(p, dict) else {"type": "text", "text": str(p)} for p in content)
        else:
            parts.append({"type": "text", "text": content if isinstance(content, str) else str(content)})
    parts.append({"type": "text", "text": "</follow_up>"})
    return parts


def _forces_a_call(choice: str | JSONObject) -> bool:
    if isinstance(choice, str):
        return choice not in ("auto", "none")
    return choice.get("type") not in ("auto", "none")


async def execute_run(
    ctx: RunContext,
    *,
    opening: Sequence[Message] = (),
    start_send: bool = False,
    heal_calls: Sequence[JSONObject] = (),
    resume_calls: Sequence[JSONObject] = (),
    resume_round: int | None = None,
) -> StatefulResult:
    """Run one send (``opening`` = heal results + user input) or one resume.

    Raises whatever a hook raises (after ``agent_error`` and ``session_ended``
    ``reason="error"`` events); appended rows stay.
    """
    run = _Run(ctx)
    try:
        opening_msgs = [{"role": "tool", "tool_call_id": str(c.get("id") or ""), "content": HEALED_RESULT}
                        for c in heal_calls] + list(opening)
        if opening_msgs:
            try:
                await ctx.append(opening_msgs, round_index=None, start_send=start_send)
            except WriteConflict as exc:
                raise StaleWindowError(str(exc)) from exc
            except LeaseLostError as exc:
                raise StaleWindowError(str(exc), lease_lost=True) from exc
        await run.session_start()
        if resume_calls:
            await run_tool_calls(ctx, list(resume_calls), round_index=resume_round or 1)
            if ctx.token.is_cancelled():
                run.status = RunStatus.CANCELLED
        await run.rounds()
        if ctx.close_follow_ups is not None:
            ctx.close_follow_ups()
        if run.spec is not None:
            await run.structured_output()
        return await run.finish()
    except StaleWindowError:
        raise
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            ctx.emit(AgentEventType.AGENT_ERROR, AgentErrorPayload(error=str(exc), error_type=type(exc).__name__))
            ctx.emit(AgentEventType.SESSION_ENDED, SessionEndedPayload(reason="error", status=None))
        raise
