"""Changes that weaken the protection: `policy diff` names each in a WARNING line and exits non-zero
unless `--allow-weaker` (a hot reload applies them but logs and audits each: test_policy_reload_scope)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.policy import Policy
from gateway.policy.diff import weakenings

ROOT = Path(__file__).resolve().parents[2]
BASE = """\
backends:
  - {name: ext, adapter: openai, model: m, api_base: "http://127.0.0.1:9/v1", trust: external}
  - {name: local, adapter: openai, model: m, api_base: "http://127.0.0.1:8/v1", trust: internal}
"""


def policy(extra: str = "") -> Policy:
    return Policy.model_validate(yaml.safe_load(BASE + extra))


@pytest.mark.parametrize(("extra", "expect"), [
    ("pii:\n  treatment:\n    external: {SECRET: pseudonymize}\n",
     "pii.treatment.external.SECRET: block -> pseudonymize"),
    ("pii:\n  treatment:\n    internal: {SECRET: allow}\n", "pii.treatment.internal.SECRET: block -> allow"),
    ("pii:\n  treatment:\n    external: {default: mask}\n", "pii.treatment.external.default: pseudonymize -> mask"),
    ("pii: {enabled: false}\n", "pii.enabled: True -> False"),
    ("pii: {output_scan: {enabled: false}}\n", "pii.output_scan.enabled: True -> False"),
    ("pii: {entities: [PERSON, SECRET]}\n", "pii: EMAIL_ADDRESS is no longer detected"),
    ("pii: {thresholds: {SECRET: 0.9}}\n", "pii.thresholds.SECRET: 0.4 -> 0.9"),
    ("pii: {allow_list: [Acme]}\n", "pii.allow_list: 1 value(s) added"),
    ("pii: {media: {inline: allow}}\n", "pii.media.inline: internal -> allow"),
    ("risk: {tier_actions: {high: allow}}\n", "risk.tier_actions.high: require_internal -> allow"),
    ("risk: {secrets: {action: require_internal}}\n", "risk.secrets.action: block -> require_internal"),
    ("risk: {injection: {enabled: false}}\n", "risk.injection.enabled: True -> False"),
    ("risk: {domains: {medical: {tier: low}}}\n", "risk.domains.medical.tier: high -> low"),
    ("risk: {pii: {entities: {US_SSN: low}}}\n", "risk.pii.entities.US_SSN: high -> low"),
    ("risk: {rules: []}\n", "risk rule 'health data about a named person' removed"),
    ("risk: {data_class: {on_unknown: restricted}}\n", "risk.data_class.on_unknown: reject -> restricted"),
    ("access: {models: [ext, local]}\n", ""),  # narrowing is stronger; widening again is weaker
])
def test_each_weakening_is_named(extra, expect):
    lines, undone = weakenings(policy(), policy(extra)), weakenings(policy(extra), policy())
    if expect:
        assert any(line.startswith(expect) for line in lines), lines
        assert undone == []  # undoing it makes nothing weaker
    else:
        assert lines == [] and undone == ["access.models: restriction removed (was [ext, local])"]


def test_trust_and_reach_weakenings():
    old = policy("access: {models: [ext]}\nrouting: {regions: [eu]}\naudit: {legal_hold: true}\n")
    new = Policy.model_validate(yaml.safe_load(
        BASE.replace("trust: external", "trust: internal").replace("8/v1", "7/v1")
        + "  - {name: vllm, adapter: openai, model: m, api_base: 'http://10.0.0.1/v1', trust: internal}\n"
        + "access: {models: [ext, local]}\n"))
    lines = weakenings(old, new)
    for expect in ("backend 'ext' trust: external -> internal", "backend 'local' (internal) api_base:",
                   "backend 'vllm' added as internal", "access.models: now also [local]",
                   "routing.regions: restriction removed", "audit.legal_hold: True -> False"):
        assert any(line.startswith(expect) for line in lines), (expect, lines)


def test_stronger_and_neutral_changes_are_not_weakenings():
    stricter = policy("pii:\n  treatment:\n    external: {EMAIL_ADDRESS: block, default: redact}\n"
                      "    internal: {US_SSN: redact}\nrisk: {tier_actions: {medium: require_internal}}\n"
                      "limits: {rpm_per_key: 5}\n")
    assert weakenings(policy(), stricter) == []
    # the case: naming one entity's treatment weakens nothing (SECRET stays blocked)
    assert weakenings(policy(), policy("pii: {treatment: {external: {EMAIL_ADDRESS: redact}}}\n")) == []


def bulkhead(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True)


def test_diff_warns_and_fails_on_weakening_unless_allowed(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        (d / "tenants").mkdir(parents=True)
        (d / "default.yaml").write_text(BASE)
    (new / "tenants" / "acme.yaml").write_text("pii:\n  treatment:\n    external: {SECRET: redact}\n")
    out = bulkhead("policy", "diff", str(old), str(new))
    assert out.returncode == 3, out.stdout + out.stderr
    assert "  - pii.treatment.external.SECRET: block -> redact" in out.stdout
    assert "WARNING: weaker (acme): pii.treatment.external.SECRET: block -> redact" in out.stdout
    assert "--allow-weaker" in out.stdout
    allowed = bulkhead("policy", "diff", "--allow-weaker", str(old), str(new))
    assert allowed.returncode == 0 and "WARNING: weaker (acme)" in allowed.stdout
    # the partial treatment: one change in effect, nothing weaker, exit 0
    (new / "tenants" / "acme.yaml").write_text("pii:\n  treatment:\n    external: {EMAIL_ADDRESS: redact}\n")
    out = bulkhead("policy", "diff", str(old), str(new))
    assert out.returncode == 0, out.stdout
    assert out.stdout == "acme:\n  - pii.treatment.external.EMAIL_ADDRESS: unset -> redact\n"
    # two files: the same rules
    (new / "default.yaml").write_text(BASE + "pii: {enabled: false}\n")
    out = bulkhead("policy", "diff", str(old / "default.yaml"), str(new / "default.yaml"))
    assert out.returncode == 3 and "WARNING: weaker (policy): pii.enabled: True -> False" in out.stdout


def test_a_hallucination_block_that_no_longer_blocks_is_a_weakening():
    rule = "hallucination:\n  rules:\n    - {when: {domains: [medical]}, checks: [grounding], action: %s}\n"
    assert weakenings(policy(rule % "block"), policy(rule % "flag")) == [
        'hallucination grounding when {"domains":["medical"]}: block -> flag']
    assert weakenings(policy(rule % "block"), policy()) == [
        'hallucination grounding when {"domains":["medical"]}: block -> no rule']
    assert weakenings(policy(rule % "flag"), policy()) == []
    assert weakenings(policy(rule % "escalate"), policy(rule % "block")) == []
