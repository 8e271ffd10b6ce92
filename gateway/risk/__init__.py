"""Risk signals: sensitive domains, prompt injection, PII/secret counts and the declared data class,
mapped by the policy's `risk:` section to a tier (low/medium/high/critical) and an action
(allow/require_internal/block). Entry points: `RiskPolicy`, `get_engine().assess(...)`, `assess(...)`."""

from gateway.risk.assess import DataClassError, RiskAssessment, RiskEngine, assess, get_engine
from gateway.risk.config import RiskPolicy

__all__ = ["DataClassError", "RiskAssessment", "RiskEngine", "RiskPolicy", "assess", "get_engine"]
