"""The answer's way back, written once: the request's values restored, the output scanned for
personal data the request did not carry, the policy's checks run, the content noted for the audit,
and the call's usage settled against admission.

A streamed answer is the general case: chunks are restored as they pass, and the rest runs on the
collected text when the backend is done. A whole answer is that collected form, which the scan and
the checks may still change, replace or withhold because nothing of it has been sent yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from adapters.base import CallResult, UpstreamError, Usage
from gateway import pricing
from gateway.context import RequestContext
from gateway.errors import APIError, bad_request
from gateway.hallucination.stage import CheckOutcome, verify
from gateway.limits import MICRO_USD
from gateway.pii.stage import answer_text, scan_answer
from gateway.policy import Backend, CheckRule
from gateway.state import GatewayState, drain_requested
from gateway.telemetry import COST, TOKENS, UPSTREAM_ERRORS
from gateway.upstream import call_route, upstream_error

log = logging.getLogger("bulkhead")

DONE = b"data: [DONE]\n\n"


class Answer:
    """One request's answer after routing: `call`, then `whole` or `stream` (or `replay` for a
    cached one). `rule`: the hallucination check the policy applies to it, if any."""

    def __init__(self, gw: GatewayState, ctx: RequestContext, rule: CheckRule | None) -> None:
        assert ctx.privacy is not None and ctx.route is not None
        self.gw, self.ctx, self.rule = gw, ctx, rule
        self.privacy = ctx.privacy

    async def call(self, *, stream: bool) -> tuple[Backend, Any]:
        """The routed backend or its fallbacks; for a stream the result is (iterator, first chunk)."""
        ctx = self.ctx
        method = ctx.request.adapter_method(stream=stream)
        if method is None:
            raise bad_request(f"The model '{ctx.request.model}' does not support streaming.", "stream")
        try:
            with ctx.stage("call"):
                return await call_route(self.gw, ctx, method, self.privacy.outbound, stream=stream)
        except APIError:
            await self.settle(ctx.route.backend, Usage())  # releases what admission reserved
            raise

    async def whole(self, backend: Backend, result: CallResult, *, cache_key: str | None = None) -> dict[str, Any]:
        await self.settle(backend, result.usage)
        if result.extra.get("experts"):
            self.ctx.experts = result.extra["experts"]
        answer, _ = await self._finish(backend, result.body, whole=True)
        if cache_key is not None:
            await self._remember(cache_key, backend, result.body, answer)
        return answer

    async def replay(self, backend: Backend, hit: dict[str, Any]) -> dict[str, Any]:
        """A cached answer, restored with this request's vault and scanned again: the request's own
        values differ from the one that filled the cache, and so may what the output scan protects."""
        ctx = self.ctx
        ctx.cache = "hit"
        ctx.usage = Usage.from_openai(hit["body"].get("usage"))
        ctx.checks = [CheckOutcome.from_dict({**c, "cached": True}) for c in hit.get("checks") or ()]
        ctx.grounding = hit.get("grounding")
        answer, _ = await self._finish(backend, hit["body"], whole=True, check=False)
        if hit.get("annotation"):
            answer = {**answer, "bulkhead": hit["annotation"]}
        return answer

    async def stream(self, backend: Backend, it: AsyncIterator[dict], first: dict) -> AsyncIterator[bytes]:
        """Placeholders are restored chunk by chunk, holding back only text that could still be the
        start of one. After the first chunk a failure can no longer change the status: it ends the
        stream with an error event (the client has already seen a 200)."""
        ctx, wants_usage = self.ctx, self.ctx.request.wants_stream_usage
        restorer = self.privacy.stream_restorer(backend)
        collected = StreamText()
        usage = Usage()
        try:
            async with contextlib.aclosing(it):
                chunk = first
                while True:
                    if chunk.get("usage"):
                        usage = Usage.from_openai(chunk["usage"])
                        if not wants_usage:
                            chunk = {k: v for k, v in chunk.items() if k != "usage"}
                    if "bulkhead_experts" in chunk:
                        ctx.experts = chunk.pop("bulkhead_experts")
                    if restorer is not None:
                        chunk = restorer.feed_chunk(chunk)
                    collected.add(chunk)
                    if chunk.get("choices") or (wants_usage and "usage" in chunk):
                        yield b"data: " + orjson.dumps(chunk) + b"\n\n"
                    try:
                        chunk = await anext(it)
                    except StopAsyncIteration:
                        break
            if restorer is not None and (held := restorer.finish()):
                tail = {k: v for k, v in first.items() if k != "usage"} | {"choices": held}
                collected.add(tail)
                yield b"data: " + orjson.dumps(tail) + b"\n\n"
            _, note = await self._finish(backend, collected.as_body(), whole=False)
            if note:
                yield note
            yield DONE
        except UpstreamError as exc:
            UPSTREAM_ERRORS.labels(backend.name, exc.kind).inc()
            err = upstream_error(exc)
            ctx.error_code = "stream_" + err.code
            yield b"data: " + orjson.dumps(err.body()) + b"\n\n"
        except asyncio.CancelledError:
            # cancelled: the client went away, or the drain time after SIGTERM ran out
            ctx.error_code = "server_shutdown" if drain_requested() else "client_disconnected"
            raise
        finally:
            ctx.served_by = backend
            if not (usage.prompt_tokens or usage.completion_tokens):
                # Cut short before the usage chunk (or a backend that sends none): charge what was
                # streamed, so dropping a stream early is no way around budgets and token limits.
                usage = Usage(ctx.request.texts.prompt_tokens, -(-collected.chars // 4))
                ctx.usage_estimated = True
            await self.settle(backend, usage)

    async def _finish(self, backend: Backend, body: dict[str, Any], *, whole: bool,
                      check: bool = True) -> tuple[dict[str, Any], bytes]:
        """Restore (a whole answer; a stream's chunks were restored as they passed), scan, check.
        A stream's scan and checks can only record: it has been sent."""
        ctx = self.ctx
        with ctx.stage("restore"):
            ctx.served_by = backend  # the PII record is written with this zone's treatment whatever follows
            if whole:
                body = self.privacy.restore(backend, body)
            body = await scan_answer(self.privacy, body, can_change=whole)
        note = b""
        if check and self.rule is not None:
            with ctx.stage("verify"):
                body, note = await verify(self.gw, ctx, self.rule, backend, body, whole=whole)
        ctx.answer = answer_text(body)
        return body, note

    async def _remember(self, key: str, backend: Backend, raw: dict[str, Any], answer: dict[str, Any]) -> None:
        """Only an answer that passed every check is kept (one withheld, flagged or redacted here
        would otherwise come back whole on the next identical request), with the checks it passed."""
        ctx, privacy = self.ctx, self.privacy
        ctx.cache = "miss"
        passed = not privacy.leaked and not privacy.output_scan_failed
        same = backend.name == ctx.route.backend.name == ctx.backend  # not a fallback's or an escalation's
        if passed and same and all(c.verdict == "supported" for c in ctx.checks):
            entry = {"body": raw, "checks": [c.as_dict() for c in ctx.checks], "annotation": answer.get("bulkhead"),
                     "grounding": ctx.grounding}
            await self.gw.cache.set(key, entry, ctx.policy.cache.ttl_seconds)

    async def settle(self, backend: Backend, usage: Usage) -> None:
        """Record what the call used and correct the admission estimates (tokens, budget) by it."""
        ctx = self.ctx
        ctx.usage = usage
        ctx.cost_usd = pricing.cost_usd(backend, usage)
        if ctx.reservation is not None:
            reservation, ctx.reservation = ctx.reservation, None
            try:
                await self.gw.limiter.settle(reservation, usage.prompt_tokens + usage.completion_tokens,
                                             int(ctx.cost_usd * MICRO_USD))
            except Exception as exc:  # a failed correction must not fail an answered request
                log.warning("could not settle limits (%s)", type(exc).__name__)
        TOKENS.labels(backend.name, "in").inc(usage.prompt_tokens)
        TOKENS.labels(backend.name, "out").inc(usage.completion_tokens)
        COST.labels(backend.name).inc(ctx.cost_usd)


class StreamText:
    """The streamed answer's text per choice, kept for the output scan and the checks."""

    def __init__(self) -> None:
        self.parts: dict[int, list[str]] = {}
        self.chars = 0  # every choice's text and tool-call arguments, for usage a stream did not report

    def add(self, chunk: dict) -> None:
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            text = delta.get("content") if delta else choice.get("text")
            if isinstance(text, str):
                self.parts.setdefault(int(choice.get("index") or 0), []).append(text)
                self.chars += len(text)
            for call in delta.get("tool_calls") or () if delta else ():
                args = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
                self.chars += len(args) if isinstance(args, str) else 0

    def as_body(self) -> dict:
        return {"choices": [{"message": {"content": "".join(p)}} for _, p in sorted(self.parts.items())]}


def as_event_stream(answer: dict) -> bytes:
    """A checked, complete answer as the event stream a client that asked for one expects."""
    chunk = {"id": answer.get("id"), "object": "chat.completion.chunk", "created": answer.get("created"),
             "model": answer.get("model"),
             "choices": [{"index": c.get("index", i), "delta": c.get("message") or {},
                          "finish_reason": c.get("finish_reason")} for i, c in enumerate(answer.get("choices") or [])]}
    if answer.get("bulkhead"):
        chunk["bulkhead"] = answer["bulkhead"]
    return b"data: " + orjson.dumps(chunk) + b"\n\n" + DONE
