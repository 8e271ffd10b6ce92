"""`policy explain`, on the command line and at POST /v1/bulkhead/policy/explain: one request put
through the journey's own inspect (PII), risk, decide and transform stages (gateway/pipeline.py),
with nothing called. So an explanation is the decision the gateway makes for that request, and
where the gateway would refuse it (a secret, an injection, a risk tier no allowed backend can
serve, a backend without credentials) it is that refusal, word for word.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gateway.auth import Principal
from gateway.errors import APIError
from gateway.pii.stage import PrivacyPlan, inspect_model_request
from gateway.policy import Policy
from gateway.request import ModelRequest
from gateway.risk.assess import Trigger, get_engine
from gateway.risk.config import ACTIONS, TIERS
from gateway.risk.stage import RiskAssessment, assess_risk
from gateway.routing import RouteDecision, Verdict
from gateway.routing import explain as explain_route


@dataclass(frozen=True)
class Explanation:
    request: ModelRequest
    privacy: PrivacyPlan | None
    risk: RiskAssessment | None  # None: refused before the risk stage (inline media, a bad data class)
    verdicts: tuple[Verdict, ...]
    decision: RouteDecision | None  # None when refused
    refusal: APIError | None

    @property
    def reason(self) -> str:
        return self.refusal.message if self.refusal is not None else self.decision.reason

    def risk_record(self) -> dict[str, Any] | None:
        if self.risk is None:
            return None
        return {**self.risk.record(),
                "blocked_by": [{"signal": t.signal, "found": t.found, "setting": t.setting}
                               for t in self.risk.blocked_by]}

    def pii_record(self) -> dict[str, Any] | None:
        """Counts by entity type (never a value), as the audit record keeps them."""
        privacy = self.privacy
        if privacy is None or (privacy.inspection is None and not privacy.failed):
            return None
        return {"detected": privacy.inspection.counts() if privacy.inspection is not None else {},
                "analysis": privacy.failure or "ok"}

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        refusal = self.refusal
        return {
            "pii": self.pii_record(),
            "risk": self.risk_record(),
            "tokens": {"prompt": self.request.texts.prompt_tokens, "admission": self.request.tokens},
            "difficulty": d.difficulty if d else None,
            "min_quality": d.min_quality if d else None,
            "candidates": [{"backend": v.backend, "accepted": v.accepted, "code": v.code, "reason": v.reason,
                            "expected_cost_usd": v.expected_cost_usd} for v in self.verdicts],
            "decision": d.backend.name if d else None,
            "fallbacks": [b.name for b in d.fallbacks] if d else [],
            "reason": self.reason,
            "refusal": None if refusal is None else {"status": refusal.status, "code": refusal.code,
                                                     "message": refusal.message},
        }


def warm_up(policy: Policy) -> None:
    """Load what the inspect and risk stages need, so that neither runs into its time limit while
    loading (a cold risk stage would be timed out, and held inside, instead of scored). The gateway
    does this at start-up (gateway/state.py); the CLI before it explains."""
    if policy.pii.enabled:
        # presidio + spaCy take seconds to import; only policies with PII inspection pay it
        from gateway.pii.analyzer import analyzer_for

        analyzer_for(policy.pii)
    if policy.risk.embeddings.enabled or policy.risk.injection.enabled:  # the injection model reads them
        get_engine().warm_up(policy.risk)


async def explain_request(policy: Policy, principal: Principal, request: ModelRequest, *,
                          declared: str | None = None, assume: str = "allow") -> Explanation:
    """`declared`: the data class the request declares (the policy's header). `assume`: a risk
    action to assume at least (the CLI's --risk-action): the stricter of it and the assessed one."""
    privacy: PrivacyPlan | None = None
    risk: RiskAssessment | None = None
    try:
        privacy = await inspect_model_request(policy, request)
        risk = _at_least(await assess_risk(policy.risk, request.texts, privacy, declared), assume)
    except APIError as exc:
        return Explanation(request, privacy, risk, (), None, exc)
    verdicts, decision, refusal = explain_route(policy, principal, request, risk)
    if decision is not None:
        try:
            privacy.outbound(decision.backend)  # transform: a `block` treatment refuses here
        except APIError as exc:
            decision, refusal = None, exc
    return Explanation(request, privacy, risk, verdicts, decision, refusal)


def _at_least(risk: RiskAssessment, action: str) -> RiskAssessment:
    if ACTIONS.index(action) <= ACTIONS.index(risk.action):
        return risk
    tier = max(risk.tier, "high", key=TIERS.index)
    assumed = Trigger("assumed", f"the explanation assumes risk action '{action}'", "--risk-action")
    return replace(risk, tier=tier, action=action, reasons=[*risk.reasons, f"assumed {action} -> {tier}"],
                   blocked_by=(*risk.blocked_by, assumed) if action == "block" else risk.blocked_by)
