from __future__ import annotations

import numpy as np
import pytest

from gateway.risk.config import RiskPolicy
from gateway.risk.domains import DomainHead, DomainScorer, code_shape
from gateway.risk.prepare import prepare
from tests.risk.conftest import load_jsonl

THRESHOLD = RiskPolicy().domains["medical"].threshold


def _found(scorer, embedder, text):
    scores = scorer.score(prepare([text], embedder))
    return {d for d, s in scores.items() if s >= THRESHOLD}, scores


def test_authored_domain_cases(domain_scorer, embedder):
    """The authored chat-style cases. The lexicon-and-exemplar detector they were written for was
    tuned on them (>= 90% agreement); the learned head never saw them and agrees on 39 of 50: it
    misses chat-style financial, legal and HR requests that its public training sets lack, and reads
    two ordinary prompts that mention a nurse or a doctor as medical (bench/RESULTS.md, decision
    0014). Held at that level, with two cases of slack for a retrained head."""
    cases = load_jsonl("domain_cases.jsonl")
    right = tripped = 0
    for c in cases:
        found, _ = _found(domain_scorer, embedder, c["text"])
        right += found == set(c["domains"])
        tripped += bool(found) and not c["domains"]
    assert right >= 37, right
    assert tripped <= 2, tripped


ONE_MENTION = (
    "My lawyer friend recommended a great pizza place; what toppings should I try?",
    "I got a bonus at work! Suggest a fun way to celebrate.",
    pytest.param("Write a birthday poem for my friend who is a nurse.", marks=pytest.mark.xfail(
        strict=True, reason="known miss of the learned head (decision 0014): a short text that mentions a "
        "medical profession reads as medical; its training sets hold few casual mentions")),
)


@pytest.mark.parametrize("text", ONE_MENTION)
def test_one_mention_is_not_a_domain(domain_scorer, embedder, text):
    found, scores = _found(domain_scorer, embedder, text)
    assert found == set(), (text, scores)


@pytest.mark.xfail(strict=True, reason="known miss of the learned head (decision 0014): 'My doctor is nice.' "
                   "scores higher than a clinical instruction; short texts are read by topic")
def test_more_domain_evidence_scores_higher(domain_scorer, embedder):
    _, one = _found(domain_scorer, embedder, "My doctor is nice.")
    _, many = _found(
        domain_scorer,
        embedder,
        "The patient's biopsy confirmed metastatic cancer; adjust the chemotherapy dosage.",
    )
    assert many["medical"] > one["medical"] + 0.3


def test_head_scores_domain_text_above_ordinary_text(domain_scorer, embedder):
    _, clinical = _found(domain_scorer, embedder,
                         "The patient's biopsy confirmed metastatic cancer; adjust the chemotherapy dosage.")
    _, health = _found(domain_scorer, embedder, "What are the side effects of metformin for type 2 diabetes?")
    _, ordinary = _found(domain_scorer, embedder, "Suggest three names for a bakery that sells sourdough.")
    assert clinical["medical"] >= THRESHOLD > max(ordinary.values()), (clinical, ordinary)
    assert health["medical"] > 10 * ordinary["medical"], (health, ordinary)


def test_head_file_is_checked(tmp_path):
    bad = tmp_path / "domain_head.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match="train_domains.py"):
        DomainHead.load(bad)


def test_broken_vector_reads_as_domain_present():
    head = DomainHead.load()
    vectors = np.full((1, head.weight.shape[1]), np.nan, np.float32)
    assert (head.scores(vectors) == 1.0).all()  # fail closed: the request stays internal


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
