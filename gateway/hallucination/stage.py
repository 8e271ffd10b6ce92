"""The `verify` stage: hallucination checks chosen by policy, and what happens with their verdict.

The first `hallucination.rules` entry whose `when` matches the request picks the checks, the
threshold and the action. Checks run with a latency budget each; one that fails or runs out is
recorded as `error` and never counts as passed (for `block`, an error blocks). Every outcome goes
into the request's context, which the audit writes into the hash-chained event and into
`hallucination_checks`. Claims are recorded as offsets into the answer plus a short hash, never text.

Self-consistency samples and judge questions are model calls like any other: they go only to a
backend the request's own routing decision allowed (trust zone, region, tenant and key), they
carry the same PII treatment as the request would for that backend, and they are billed to it.

A streamed answer has been sent by the time it can be checked: there the checks can only record
(`record`) or add an SSE comment (`flag`); `block` and `escalate` need the whole answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from adapters.base import UpstreamError, Usage
from gateway import pricing
from gateway.context import RequestContext
from gateway.errors import APIError
from gateway.pii.stage import answer_text, inspect
from gateway.policy import Backend, CheckRule, HallucinationPolicy, Policy
from gateway.request import ModelRequest
from gateway.routing import RouteDecision
from gateway.upstream import upstream_error

if TYPE_CHECKING:
    from gateway.state import GatewayState

ALLOWED_CODES = ("accepted", "not_requested", "quality")


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One check's result on one answer, as the audit stores it."""

    kind: str
    version: str
    score: float | None
    threshold: float
    verdict: str  # supported | unsupported | error | uncertain | skipped (see NOT_DECIDING)
    claims: list[dict]
    latency_ms: float
    backend: str | None = None
    error: str | None = None
    action: str | None = None
    attempt: int | None = None  # 2: the escalation's answer
    cached: bool = False  # replayed from the answer cache with the answer it checked

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score"] = None if self.score is None else round(self.score, 4)
        out["latency_ms"] = round(self.latency_ms, 2)
        if self.attempt is None:
            del out["attempt"]
        if not self.cached:
            del out["cached"]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckOutcome:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})


def rule_for(policy: Policy, ctx: RequestContext, request: ModelRequest) -> CheckRule | None:
    """The first rule whose `when` matches this request (chat only: what the checks can read)."""
    if request.mode != "chat" or not policy.hallucination.rules:
        return None
    tier = ctx.risk.tier if ctx.risk is not None else "low"
    domains = set(ctx.risk.domains if ctx.risk is not None else ())
    has_context = bool(request.texts.grounding)
    for rule in policy.hallucination.rules:
        w = rule.when
        if w.tiers and tier not in w.tiers:
            continue
        if w.domains and not domains & set(w.domains):
            continue
        if w.models and ctx.requested_model not in w.models:
            continue
        if w.context and not has_context:
            continue
        return rule
    return None


async def verify(gw: GatewayState, ctx: RequestContext, rule: CheckRule, backend: Backend, answer: dict[str, Any],
                 *, whole: bool) -> tuple[dict[str, Any], bytes]:
    """Check the (restored) answer; returns it (annotated, or another backend's after an
    escalation) and, for a stream, the SSE comment to send before its end. `whole`: the answer
    has not been sent yet, so it may still be withheld or replaced."""
    assert ctx.policy is not None and ctx.request is not None and ctx.route is not None
    action = rule.action if whole or rule.action in ("record", "flag") else "flag"
    verifier = Verifier(ctx.policy, ctx.route, rule, ctx.request, _asker(gw, ctx))
    outcomes = await verifier.run(answer_text(answer), backend)
    ctx.checks = [replace(o, action=action) for o in outcomes]
    if action == "escalate" and failed(outcomes):
        target = verifier.escalation_target(backend)
        if target is None:
            ctx.notes["escalation"] = "no stronger allowed backend"
        else:
            ctx.notes["escalated_from"] = backend.name
            privacy = ctx.privacy
            second = privacy.restore(target, await _call(gw, ctx, target, privacy.outbound(target)))
            ctx.backend = target.name
            outcomes = await verifier.run(answer_text(second), target)
            ctx.checks += [replace(o, action="escalate", backend=o.backend or target.name, attempt=2)
                           for o in outcomes]
            answer = second
    if action in ("flag", "escalate"):
        ctx.grounding = header_value(outcomes)
        if not whole:
            return answer, b": bulkhead-grounding " + ctx.grounding.encode() + b"\n\n"
        return annotate(answer, outcomes, action), b""
    if action == "block" and failed(outcomes):
        verdict, score = summary(outcomes)
        detail = f"score {score:.2f} below the policy's threshold" if score is not None else "the check failed"
        raise APIError(422, f"The answer was withheld: it did not pass the policy's grounding check ({verdict}; "
                       f"{detail}).", "answer_unsupported")
    return answer, b""


async def _call(gw: GatewayState, ctx: RequestContext, backend: Backend, body: dict) -> dict:
    adapter = gw.adapters.get(backend)
    try:
        result = await adapter.chat(body, timeout=backend.timeout_s)
    except UpstreamError as exc:
        raise upstream_error(exc) from None
    _bill(ctx, backend, result.usage)
    return result.body


def _bill(ctx: RequestContext, backend: Backend, usage: Usage) -> None:
    ctx.usage = Usage(ctx.usage.prompt_tokens + usage.prompt_tokens,
                      ctx.usage.completion_tokens + usage.completion_tokens)
    ctx.cost_usd += pricing.cost_usd(backend, usage)


def _asker(gw: GatewayState, ctx: RequestContext):
    """Calls for samples and judges: same trust-zone treatment as the request (an external backend
    sees placeholders, never the values), answers restored before they are compared. The messages
    are inspected afresh because they carry the answer, which the request's inspection never saw."""
    pii = ctx.policy.pii

    async def ask(backend: Backend, messages: list[dict], n: int, temperature: float) -> list[str]:
        probe = await inspect(pii, {"messages": messages})
        body = {**probe.outbound(backend), "temperature": temperature}
        replies = await asyncio.gather(*(_call(gw, ctx, backend, body) for _ in range(n)))
        return [answer_text(probe.restore(backend, r)) for r in replies]

    return ask


def _claims(answer: str, spans) -> list[dict]:
    out = []
    for start, end, score in spans:
        digest = hashlib.sha256(answer[start:end].encode()).hexdigest()[:12]
        out.append({"start": start, "end": end, "score": round(float(score), 4), "h": digest})
    return out


def allowed_backends(policy: Policy, route: RouteDecision) -> list[Backend]:
    names = {v.backend for v in route.verdicts if v.code in ALLOWED_CODES}
    return [b for b in policy.backends if b.name in names and "chat" in b.modes]


class Verifier:
    """One request's checks. `ask(backend, messages, n, temperature)` makes a model call under the
    request's routing and PII rules and returns the answers' texts."""

    def __init__(self, policy: Policy, route: RouteDecision, rule: CheckRule, request: ModelRequest, ask) -> None:
        self.policy, self.route, self.rule, self.ask = policy, route, rule, ask
        self.hp: HallucinationPolicy = policy.hallucination
        self.messages = list(request.body.get("messages") or ())
        self.context = request.texts.grounding
        self.question = request.texts.question

    def _pick(self, name: str | None, used: Backend) -> Backend | None:
        allowed = allowed_backends(self.policy, self.route)
        if name is not None:
            return next((b for b in allowed if b.name == name), None)
        internal = [b for b in allowed if b.trust == "internal"]
        return (internal or [used])[0]

    async def run(self, answer: str, used: Backend) -> list[CheckOutcome]:
        outcomes: list[CheckOutcome] = []
        for kind in self.rule.checks:
            if kind == "judge" and self.rule.judge_band is not None and not self._settle(outcomes):
                outcomes.append(CheckOutcome(kind, _version(kind), None, self._threshold(kind), "skipped", [], 0.0))
                continue
            t0 = time.perf_counter()
            try:
                outcome = await asyncio.wait_for(self._one(kind, answer, used), self.hp.timeout_s)
            except TimeoutError:
                outcome = self._error(kind, "timed out")
            except APIError as exc:
                outcome = self._error(kind, exc.code)
            except Exception as exc:  # a failed check is recorded, never passed; the type alone (no text)
                outcome = self._error(kind, type(exc).__name__)
            outcomes.append(replace(outcome, latency_ms=(time.perf_counter() - t0) * 1000))
        return outcomes

    def _settle(self, outcomes: list[CheckOutcome]) -> bool:
        """Cascade: True when the judge must settle the grounding check, whose outcome then becomes
        `uncertain` (recorded, not deciding). A grounding check that failed to run is settled too."""
        low, high = self.rule.judge_band  # type: ignore[misc]
        for i, o in enumerate(outcomes):
            if o.kind == "grounding":
                if o.score is None:
                    return True
                if low <= o.score <= high:
                    outcomes[i] = replace(o, verdict="uncertain")
                    return True
                return False
        return True

    def _error(self, kind: str, why: str) -> CheckOutcome:
        return CheckOutcome(kind, _version(kind), None, self._threshold(kind), "error", [], 0.0, error=why[:200])

    def _threshold(self, kind: str) -> float:
        if self.rule.threshold is not None:
            return self.rule.threshold
        return _check(kind).threshold

    def _verdict(self, kind, result, backend: Backend | None, answer: str) -> CheckOutcome:
        threshold = self._threshold(kind)
        verdict = "supported" if result.score >= threshold else "unsupported"
        return CheckOutcome(kind, _version(kind), float(result.score), threshold, verdict,
                            _claims(answer, result.claims), 0.0, backend.name if backend else None)

    async def _one(self, kind: str, answer: str, used: Backend) -> CheckOutcome:
        check = _check(kind)
        if kind == "grounding":
            if not self.context:
                return CheckOutcome(kind, check.version, None, self._threshold(kind), "error", [], 0.0,
                                    error="no grounding context supplied")
            result = await asyncio.to_thread(check.score, self.context, answer, self.question)
            return self._verdict(kind, result, None, answer)
        if kind == "self_consistency":
            backend = self._pick(self.hp.sample_backend, used)
            if backend is None:
                raise APIError(403, "no allowed sampling backend", "no_allowed_backend")
            samples = await self.ask(backend, self.messages, self.hp.samples, 0.8)
            result = await asyncio.to_thread(check.score, answer, samples)
            return self._verdict(kind, result, backend, answer)
        backend = self._pick(self.hp.judge_backend, used)
        if backend is None:
            raise APIError(403, "no allowed judge backend", "no_allowed_backend")
        messages = check.build_messages("\n\n".join(self.context), self.question, answer)
        replies = await self.ask(backend, messages, 1, 0.0)
        result = check.parse(replies[0] if replies else "")
        return self._verdict(kind, result, backend, answer)

    def escalation_target(self, used: Backend) -> Backend | None:
        allowed = allowed_backends(self.policy, self.route)
        if self.rule.escalate_to:
            return next((b for b in allowed if b.name == self.rule.escalate_to and b.name != used.name), None)
        stronger = [b for b in allowed if b.quality > used.quality]
        return max(stronger, key=lambda b: (b.quality, -len(b.name)), default=None)


_CHECKS: dict[str, Any] = {}


def _check(kind: str):
    """One instance per kind per process (the grounding model is loaded once)."""
    if kind not in _CHECKS:
        # Imported on first use: the checks load numpy-heavy modules (grounding an embedding model too)
        # that a gateway whose policies check nothing should not pay for at start-up.
        if kind == "grounding":
            from gateway.hallucination.grounding import GroundingCheck as cls  # see above
        elif kind == "self_consistency":
            from gateway.hallucination.consistency import SelfConsistencyCheck as cls  # see above
        else:
            from gateway.hallucination.judge import JudgeCheck as cls  # see above
        _CHECKS[kind] = cls()
    return _CHECKS[kind]


def _version(kind: str) -> str:
    return str(_check(kind).version)


# Recorded, not deciding: a grounding outcome the judge settled, a judge the cascade did not ask.
NOT_DECIDING = ("uncertain", "skipped")


def deciding(outcomes: list[CheckOutcome]) -> list[CheckOutcome]:
    return [o for o in outcomes if o.verdict not in NOT_DECIDING]


def failed(outcomes: list[CheckOutcome]) -> bool:
    return any(o.verdict != "supported" for o in deciding(outcomes))


def summary(outcomes: list[CheckOutcome]) -> tuple[str, float | None]:
    """The overall verdict (the worst) and the lowest score of the deciding outcomes, for the header."""
    outcomes = deciding(outcomes)
    verdict = "error" if any(o.verdict == "error" for o in outcomes) else (
        "unsupported" if any(o.verdict == "unsupported" for o in outcomes) else "supported")
    scores = [o.score for o in outcomes if o.score is not None]
    return verdict, (min(scores) if scores else None)


def header_value(outcomes: list[CheckOutcome]) -> str:
    verdict, score = summary(outcomes)
    return verdict + ("" if score is None else f"; score={score:.3f}")


def annotate(body: dict, outcomes: list[CheckOutcome], action: str) -> dict:
    verdict, score = summary(outcomes)
    ext = dict(body.get("bulkhead") or {})
    ext["grounding"] = {"verdict": verdict, "score": score, "action": action,
                        "checks": [{"kind": o.kind, "verdict": o.verdict, "score": o.score,
                                    "claims": [{k: c[k] for k in ("start", "end", "score")} for c in o.claims]}
                                   for o in outcomes]}
    return {**body, "bulkhead": ext}
