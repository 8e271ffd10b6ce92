from __future__ import annotations

import pytest

from gateway.hallucination.consistency import SelfConsistencyCheck

ANSWER = "Marie Curie won the Nobel Prize in Physics in 1903. She was born in Warsaw."
AGREEING = [
    "Marie Curie was born in Warsaw and won the Nobel Prize in Physics in 1903.",
    "Born in Warsaw, Marie Curie received the 1903 Nobel Prize in Physics.",
]
DISAGREEING = [
    "Marie Curie won the Nobel Prize in Chemistry in 1911. She was born in Paris.",
    "Marie Curie was born in Lyon and won a prize in 1925.",
]


def test_agreeing_samples_score_higher_than_disagreeing_ones():
    check = SelfConsistencyCheck()
    good = check.score(ANSWER, AGREEING)
    bad = check.score(ANSWER, DISAGREEING)
    assert good.kind == "self_consistency"
    assert good.score > bad.score
    assert len(good.claims) == len(bad.claims) == 2
    assert all(g.score >= b.score for g, b in zip(good.claims, bad.claims, strict=True))
    assert good.detail["samples"] == 2


def test_claim_level_disagreement_is_located():
    check = SelfConsistencyCheck()
    samples = ["Marie Curie won the Nobel Prize in Physics in 1903. She was born in Paris."] * 2
    result = check.score(ANSWER, samples)
    first, second = result.claims
    assert second.score < first.score
    assert "Warsaw" in [ANSWER[a:b] for a, b in result.novel_words]


def test_sample_validation():
    check = SelfConsistencyCheck()
    with pytest.raises(ValueError):
        check.score(ANSWER, ["", "  "])
    with pytest.raises(TypeError):
        check.score(ANSWER, "a single string")  # type: ignore[arg-type]
    assert check.score("", AGREEING).verdict == "supported"
