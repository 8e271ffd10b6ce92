"""An entity type name the PII engine cannot report (a typo such as CREDITCARD) is an error located
at its file and line, wherever a policy names one: a treatment row, a threshold, a risk tier, a rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.pii.config import KNOWN_ENTITIES
from gateway.policy.loader import PolicyError, load_policy_set

ROOT = Path(__file__).resolve().parents[2]
BASE = "backends:\n  - {name: ext, adapter: openai, model: m, api_base: 'http://127.0.0.1:9/v1'}\n"


def errors_of(tmp: Path) -> list:
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp)
    return info.value.errors


@pytest.mark.parametrize(("section", "line", "column", "where"), [
    ("pii:\n  treatment:\n    external:\n      EMAIL_ADDRESS: redact\n      CREDITCARD: block\n",
     7, 7, "pii.treatment.external.CREDITCARD"),
    ("pii:\n  treatment:\n    internal: {CREDITCARD: block}\n", 5, 16, "pii.treatment.internal.CREDITCARD"),
    ("pii:\n  thresholds:\n    CREDITCARD: 0.5\n", 5, 5, "pii.thresholds.CREDITCARD"),
    ("risk:\n  pii:\n    entities:\n      CREDITCARD: high\n", 6, 7, "risk.pii.entities.CREDITCARD"),
    ("risk:\n  rules:\n    - name: cards\n      when: ['pii:CREDITCARD']\n      tier: high\n",
     6, 14, "risk.rules[0].when[0]"),
])
def test_an_unknown_entity_name_is_a_located_error(tmp_path, section, line, column, where):
    (tmp_path / "default.yaml").write_text(BASE + section)
    [err] = errors_of(tmp_path)
    assert err.file.endswith("default.yaml") and (err.line, err.column) == (line, column), err
    assert err.message.startswith(where) and "'CREDITCARD'" in err.message
    assert "did you mean CREDIT_CARD?" in err.message


def test_each_unknown_name_is_reported_and_an_overlay_is_blamed(tmp_path):
    (tmp_path / "default.yaml").write_text(BASE)
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "acme.yaml").write_text(
        "pii:\n  treatment:\n    external: {SHOE_SIZE: block, PERSN: redact, PERSON: mask}\n")
    errs = errors_of(tmp_path)
    assert [e.message.split(":")[0] for e in errs] == ["pii.treatment.external.SHOE_SIZE",
                                                       "pii.treatment.external.PERSN"]
    assert all(e.file.endswith("acme.yaml") and e.line == 3 for e in errs)
    assert "did you mean PERSON?" in errs[1].message


def test_known_and_custom_entities_are_accepted(tmp_path):
    (tmp_path / "default.yaml").write_text(BASE + """\
pii:
  custom_recognizers:
    - {name: staff, entity: EMPLOYEE_ID, patterns: ['E-\\d{5}']}
  treatment:
    external: {EMPLOYEE_ID: block, CREDIT_CARD: redact, default: pseudonymize}
  thresholds: {EMPLOYEE_ID: 0.5, PERSON: 0.6}
risk:
  pii:
    entities: {EMPLOYEE_ID: high, MAC_ADDRESS: medium}
  rules:
    - {name: staff records, when: ['pii:EMPLOYEE_ID', 'pii:any'], tier: high}
""")
    policy = load_policy_set(tmp_path).default
    assert policy.pii.treatment.for_entity("external", "EMPLOYEE_ID") == "block"
    assert policy.risk.pii.entities["EMPLOYEE_ID"] == "high"
    assert "EMPLOYEE_ID" in policy.pii.known_entities and policy.pii.known_entities >= KNOWN_ENTITIES


def test_policy_check_refuses_the_typo(tmp_path):
    (tmp_path / "default.yaml").write_text(BASE + "pii:\n  treatment:\n    external: {CREDITCARD: block}\n")
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "policy", "check", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 1 and "default.yaml:5:16: pii.treatment.external.CREDITCARD" in out.stdout
