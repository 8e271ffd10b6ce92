"""The pipeline's risk stage: the caller's texts, the PII stage's counts and the declared data
class in; one tier and action out (gateway/risk/ does the scoring). The embedding model runs off
the event loop, under the policy's time limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import APIError
from gateway.pii.stage import PrivacyPlan
from gateway.request import Texts
from gateway.risk.assess import DataClassError, get_engine
from gateway.risk.config import TIERS, RiskPolicy
from gateway.routing import Risk


@dataclass(frozen=True, slots=True)
class RiskAssessment(Risk):
    """The tier and action routing acts on, and why, for the audit record."""

    signals: dict[str, Any] = field(default_factory=dict)
    injection_score: float | None = None
    domains: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {"tier": self.tier, "action": self.action, "signals": self.signals,
                "injection_score": self.injection_score, "domains": self.domains, "reasons": self.reasons}


async def assess_risk(policy: RiskPolicy, texts: Texts, privacy: PrivacyPlan, declared: str | None) -> RiskAssessment:
    """`declared`: the data class the caller named in the policy's header, if any."""
    counts = dict(privacy.inspection.counts()) if privacy.inspection is not None else {}
    secrets = counts.pop("SECRET", 0)
    try:
        scoring = asyncio.to_thread(get_engine().assess, texts.supplied, counts, secrets, declared, policy)
        result = await asyncio.wait_for(scoring, policy.timeout_s)
    except DataClassError as exc:
        raise APIError(400, str(exc), "invalid_data_class", param=policy.data_class.header) from None
    except TimeoutError:
        # Unscored is not low risk: the request may still be answered, but only inside the boundary.
        return RiskAssessment("high", "require_internal", signals={"timeout": True},
                              reasons=[f"risk scoring took longer than {policy.timeout_s} s"])
    tier, action = result.tier, result.action
    if privacy.held_inside:
        # Unanalysed text (or unreadable media) may contain anything: it stays inside the trust boundary.
        tier = max(tier, "high", key=TIERS.index)
        action = "block" if action == "block" else "require_internal"
    return RiskAssessment(tier, action, result.signals, result.injection_score, result.domains, result.reasons)
