"""The `verify` stage: hallucination checks chosen by policy, and what happens with their verdict.

The first `hallucination.rules` entry whose `when` matches the request picks the checks, the
threshold and the action. Checks run with a latency budget each; one that fails or runs out is
recorded as `error` and never counts as passed (for `block`, an error blocks). Every outcome goes
into `ctx.checks`, which the audit writer stores in the hash-chained event and in
`hallucination_checks`. Claims are recorded as offsets into the answer plus a short hash, never text.

Self-consistency samples and judge questions are model calls like any other: they go only to a
backend the request's own routing decision allowed (trust zone, region, tenant and key), and they
carry the same PII treatment as the request would for that backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from gateway.context import RequestContext
from gateway.errors import APIError
from gateway.pii.stage import answer_texts
from gateway.policy import Backend, CheckRule, HallucinationPolicy

_CONTEXT_TAG = re.compile(r"<(context|document|documents|source)>(.*?)</\1>", re.S | re.I)
ALLOWED_CODES = ("accepted", "not_requested", "quality")


@dataclass
class Outcome:
    kind: str
    version: str
    score: float | None
    threshold: float
    verdict: str  # supported | unsupported | error
    claims: list[dict]
    latency_ms: float
    backend: str | None = None
    error: str | None = None

    def record(self, action: str) -> dict:
        return {"kind": self.kind, "version": self.version, "backend": self.backend,
                "score": None if self.score is None else round(self.score, 4), "threshold": self.threshold,
                "verdict": self.verdict, "action": action, "claims": self.claims,
                "latency_ms": round(self.latency_ms, 2), "error": self.error}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def grounding_context(body: dict) -> list[str]:
    """What the app supplied to ground the answer: `bulkhead.context` documents, system messages,
    tool results, and <context>/<document> blocks inside user messages."""
    docs: list[str] = []
    ext = body.get("bulkhead")
    if isinstance(ext, dict) and isinstance(ext.get("context"), list):
        docs += [d for d in ext["context"] if isinstance(d, str) and d.strip()]
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        text = _text(message.get("content"))
        if message.get("role") in ("system", "developer", "tool", "function"):
            if text.strip():
                docs.append(text)
        elif message.get("role") == "user":
            docs += [m.group(2) for m in _CONTEXT_TAG.finditer(text) if m.group(2).strip()]
    return docs


def question_of(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _CONTEXT_TAG.sub(" ", _text(message.get("content")))
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else ""


def pick_rule(policy: HallucinationPolicy, ctx: RequestContext, has_context: bool) -> CheckRule | None:
    tier = (ctx.risk or {}).get("tier", "low")
    domains = set((ctx.risk or {}).get("domains") or [])
    for rule in policy.rules:
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


def _claims(answer: str, spans) -> list[dict]:
    out = []
    for start, end, score in spans:
        digest = hashlib.sha256(answer[start:end].encode()).hexdigest()[:12]
        out.append({"start": start, "end": end, "score": round(float(score), 4), "h": digest})
    return out


def allowed_backends(policy, route) -> list[Backend]:
    names = {v.backend for v in route.verdicts if v.code in ALLOWED_CODES}
    return [b for b in policy.backends if b.name in names and "chat" in b.modes]


class Verifier:
    """One request's checks. `ask(backend, messages, n, temperature)` makes a model call under the
    request's routing and PII rules and returns the answers' texts."""

    def __init__(self, policy, route, hp: HallucinationPolicy, rule: CheckRule, body: dict, ask) -> None:
        self.policy, self.route, self.hp, self.rule, self.body, self.ask = policy, route, hp, rule, body, ask
        self.context = grounding_context(body)
        self.question = question_of(body)

    def _pick(self, name: str | None, used: Backend) -> Backend | None:
        allowed = allowed_backends(self.policy, self.route)
        if name is not None:
            return next((b for b in allowed if b.name == name), None)
        internal = [b for b in allowed if b.trust == "internal"]
        return (internal or [used])[0]

    async def run(self, answer: str, used: Backend) -> list[Outcome]:
        outcomes = []
        for kind in self.rule.checks:
            t0 = time.perf_counter()
            try:
                outcome = await asyncio.wait_for(self._one(kind, answer, used), self.hp.timeout_s)
            except TimeoutError:
                outcome = self._error(kind, "timed out", t0)
            except APIError as exc:
                outcome = self._error(kind, exc.code, t0)
            except Exception as exc:  # a failed check is recorded, never passed; the type alone (no text)
                outcome = self._error(kind, type(exc).__name__, t0)
            outcome.latency_ms = (time.perf_counter() - t0) * 1000
            outcomes.append(outcome)
        return outcomes

    def _error(self, kind: str, why: str, t0: float) -> Outcome:
        return Outcome(kind, _version(kind), None, self._threshold(kind), "error", [],
                       (time.perf_counter() - t0) * 1000, error=why[:200])

    def _threshold(self, kind: str) -> float:
        if self.rule.threshold is not None:
            return self.rule.threshold
        return _check(kind).threshold

    def _verdict(self, kind, result, backend: Backend | None, answer: str) -> Outcome:
        threshold = self._threshold(kind)
        verdict = "supported" if result.score >= threshold else "unsupported"
        return Outcome(kind, _version(kind), float(result.score), threshold, verdict, _claims(answer, result.claims),
                       0.0, backend.name if backend else None)

    async def _one(self, kind: str, answer: str, used: Backend) -> Outcome:
        check = _check(kind)
        if kind == "grounding":
            if not self.context:
                return Outcome(kind, check.version, None, self._threshold(kind), "error", [], 0.0,
                               error="no grounding context supplied")
            result = await asyncio.to_thread(check.score, self.context, answer, self.question)
            return self._verdict(kind, result, None, answer)
        if kind == "self_consistency":
            backend = self._pick(self.hp.sample_backend, used)
            if backend is None:
                raise APIError(403, "no allowed sampling backend", "no_allowed_backend")
            samples = await self.ask(backend, self._messages(), self.hp.samples, 0.8)
            result = await asyncio.to_thread(check.score, answer, samples)
            return self._verdict(kind, result, backend, answer)
        backend = self._pick(self.hp.judge_backend, used)
        if backend is None:
            raise APIError(403, "no allowed judge backend", "no_allowed_backend")
        messages = check.build_messages("\n\n".join(self.context), self.question, answer)
        replies = await self.ask(backend, messages, 1, 0.0)
        result = check.parse(replies[0] if replies else "")
        return self._verdict(kind, result, backend, answer)

    def _messages(self) -> list[dict]:
        return [m for m in self.body.get("messages") or [] if isinstance(m, dict)]

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
        if kind == "grounding":
            from gateway.hallucination.grounding import GroundingCheck as cls
        elif kind == "self_consistency":
            from gateway.hallucination.consistency import SelfConsistencyCheck as cls
        else:
            from gateway.hallucination.judge import JudgeCheck as cls
        _CHECKS[kind] = cls()
    return _CHECKS[kind]


def _version(kind: str) -> str:
    return str(_check(kind).version)


def answer_text(body: dict) -> str:
    texts = answer_texts(body)
    return texts[0] if texts else ""


def failed(outcomes: list[Outcome]) -> bool:
    return any(o.verdict != "supported" for o in outcomes)


def summary(outcomes: list[Outcome]) -> tuple[str, float | None]:
    """The overall verdict (the worst) and the lowest score, for the header."""
    verdict = "error" if any(o.verdict == "error" for o in outcomes) else (
        "unsupported" if any(o.verdict == "unsupported" for o in outcomes) else "supported")
    scores = [o.score for o in outcomes if o.score is not None]
    return verdict, (min(scores) if scores else None)


def header_value(outcomes: list[Outcome]) -> str:
    verdict, score = summary(outcomes)
    return verdict + ("" if score is None else f"; score={score:.3f}")


def annotate(body: dict, outcomes: list[Outcome], action: str) -> dict:
    verdict, score = summary(outcomes)
    ext = dict(body.get("bulkhead") or {})
    ext["grounding"] = {"verdict": verdict, "score": score, "action": action,
                        "checks": [{"kind": o.kind, "verdict": o.verdict, "score": o.score,
                                    "claims": [{k: c[k] for k in ("start", "end", "score")} for c in o.claims]}
                                   for o in outcomes]}
    return {**body, "bulkhead": ext}

