from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from gateway.risk.config import RiskPolicy


def test_defaults_are_the_safe_ones():
    p = RiskPolicy()
    assert p.secrets.action == "block"
    assert p.injection.threshold == 0.5 and p.injection.action == "block"
    assert p.tier_actions["high"] == "require_internal" and p.tier_actions["critical"] == "require_internal"
    assert p.pii.entities["US_SSN"] == "high"
    assert p.data_class.on_unknown == "reject"
    assert set(p.domains) == {"medical", "financial", "legal", "hr", "code"}


def test_unknown_keys_are_refused():
    with pytest.raises(ValidationError):
        RiskPolicy.model_validate({"injection": {"treshold": 0.4}})
    with pytest.raises(ValidationError):
        RiskPolicy.model_validate({"domains": {"astrology": {"tier": "high"}}})


def test_partial_sections_keep_the_other_defaults():
    p = RiskPolicy.model_validate(
        yaml.safe_load("""
domains:
  legal: {threshold: 0.3}
pii:
  entities: {PERSON: low}
data_class:
  tiers: {internal: low}
tier_actions: {medium: require_internal}
""")
    )
    assert p.domains["legal"].threshold == 0.3 and p.domains["legal"].tier == "medium"
    assert p.domains["medical"].tier == "high"
    assert p.pii.entities["PERSON"] == "low" and p.pii.entities["US_SSN"] == "high"
    assert p.data_class.tiers["internal"] == "low" and p.data_class.tiers["restricted"] == "critical"
    assert p.tier_actions["medium"] == "require_internal" and p.tier_actions["critical"] == "require_internal"


def test_tier_actions_may_not_get_more_lenient_upwards():
    with pytest.raises(ValidationError, match="lenient"):
        RiskPolicy.model_validate({"tier_actions": {"critical": "allow"}})


def test_rules_name_known_signals_only():
    RiskPolicy.model_validate(
        {"rules": [{"name": "x", "when": ["domain:legal", "pii:US_SSN"], "tier": "high"}]}
    )
    with pytest.raises(ValidationError, match="unknown signal"):
        RiskPolicy.model_validate({"rules": [{"name": "x", "when": ["domain:astrology"], "tier": "high"}]})
    with pytest.raises(ValidationError):
        RiskPolicy.model_validate({"rules": [{"name": "x", "when": [], "tier": "high"}]})


def test_thresholds_are_bounded():
    with pytest.raises(ValidationError):
        RiskPolicy.model_validate({"injection": {"threshold": 1.5}})
