from __future__ import annotations

from gateway.risk.config import RiskPolicy
from gateway.risk.domains import DomainScorer, code_shape
from gateway.risk.prepare import prepare
from tests.risk.conftest import load_jsonl

THRESHOLD = RiskPolicy().domains["medical"].threshold


def _found(scorer, embedder, text):
    scores = scorer.score(prepare([text], embedder))
    return {d for d, s in scores.items() if s >= THRESHOLD}, scores


def test_authored_domain_cases(domain_scorer, embedder):
    cases = load_jsonl("domain_cases.jsonl")
    right = 0
    for c in cases:
        found, _ = _found(domain_scorer, embedder, c["text"])
        right += found == set(c["domains"])
        if not c["domains"]:
            assert found == set(), c["text"]  # ordinary prompts never trip a domain
    assert right / len(cases) >= 0.9


def test_one_mention_is_not_a_domain(domain_scorer, embedder):
    for text in (
        "Write a birthday poem for my friend who is a nurse.",
        "My lawyer friend recommended a great pizza place; what toppings should I try?",
        "I got a bonus at work! Suggest a fun way to celebrate.",
    ):
        found, scores = _found(domain_scorer, embedder, text)
        assert found == set(), (text, scores)


def test_more_domain_evidence_scores_higher(domain_scorer, embedder):
    _, one = _found(domain_scorer, embedder, "My doctor is nice.")
    _, many = _found(
        domain_scorer,
        embedder,
        "The patient's biopsy confirmed metastatic cancer; adjust the chemotherapy dosage.",
    )
    assert many["medical"] > one["medical"] + 0.3


def test_lexicon_only_mode():
    scorer = DomainScorer(None)
    scores = scorer.score(
        prepare(
            [
                "Draft the severance letter and termination notice after the harassment "
                "investigation and disciplinary meeting."
            ],
            None,
        )
    )
    assert scores["hr"] >= THRESHOLD and scores["medical"] == 0.0


def test_code_shape():
    code = "def f(x):\n    if x:\n        return x + 1\n    return 0\n"
    assert code_shape(code) >= 0.5
    assert code_shape("Please write me a poem.\nAbout the sea.") == 0.0
