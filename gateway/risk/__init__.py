"""Risk signals: sensitive domains, prompt injection, PII/secret counts and the declared data class,
mapped by the policy's `risk:` section to a tier (low/medium/high/critical) and an action
(allow/require_internal/block). Entry points: `RiskPolicy`, `get_engine().assess(...)`, `assess(...)`.

Names are imported lazily, so that reading a policy does not load the embedding model's stack."""

from importlib import import_module

_EXPORTS = {
    "DataClassError": "assess", "RiskAssessment": "assess", "RiskEngine": "assess", "assess": "assess",
    "get_engine": "assess", "RiskPolicy": "config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"gateway.risk.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'gateway.risk' has no attribute {name!r}")
