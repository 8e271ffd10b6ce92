from __future__ import annotations

import gzip
import json

import pytest

from gateway.hallucination.claim_features import CLAIM_FEATURES, claim_evidence
from gateway.hallucination.claims import split_claims
from gateway.hallucination.context_index import ContextIndex
from gateway.hallucination.grounding import GroundingCheck
from gateway.hallucination.lexicon import LEXICON_PATH, Lexicon, get_lexicon
from gateway.hallucination.stems import stem


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return get_lexicon()


def test_lemmas_follow_wordnet_morphology(lexicon):
    assert lexicon.lemmas("children") == ["child"]
    assert lexicon.lemmas("recaptured") == ["recapture"]
    assert "stop" in lexicon.lemmas("stopped")
    assert "increase" in lexicon.lemmas("increasing")
    assert lexicon.lemmas("qwzxv") == []


def test_related_words_are_stems_one_and_two_steps_away(lexicon):
    one, two = lexicon.related("regained"), lexicon.related2("regained")
    assert stem("recover") in one and stem("regain") not in one
    assert two and not one & two and stem("regain") not in two
    assert stem("unaltered") in lexicon.related("unchanged")
    assert lexicon.related("qwzxv") == lexicon.related2("qwzxv") == frozenset()


def test_antonyms_in_stems(lexicon):
    assert stem("decrease") in lexicon.antonyms("increased")
    assert stem("start") in lexicon.antonyms("stopping")
    assert lexicon.antonyms("table") == frozenset()


def _claim_values(context: str, answer: str):
    index = ContextIndex(context)
    claim = split_claims(answer)[0]
    return dict(zip(CLAIM_FEATURES, claim_evidence(index, claim, set()).values, strict=True))


def test_paraphrase_and_antonym_features():
    context = "The company recovered $20 million of provisions. The allowance was unchanged at 1.62%."
    synonym = _claim_values(context, "The company regained $20 million of provisions.")
    assert synonym["novel"] == 1 and synonym["novel_syn"] == 1
    invented = _claim_values(context, "The company borrowed $20 million of provisions.")
    assert invented["novel"] == 1 and invented["novel_syn"] == 0 and invented["novel_syn2"] == 0
    flipped = _claim_values("Sales increased in March.", "Sales decreased in March.")
    assert flipped["antonym"] == 1  # named by both the hand list and WordNet, counted once
    wordnet_only = _claim_values("The plan was approved in March.", "The plan was disapproved in March.")
    assert wordnet_only["antonym"] == 1


def test_paraphrase_scores_above_a_changed_fact():
    check = GroundingCheck()
    context = "The company recovered $20 million of provisions. The allowance was unchanged at 1.62%."
    paraphrase = check.score(context, "The company regained $20 million of provisions.")
    changed = check.score(context, "The company borrowed $20 million of provisions.")
    assert paraphrase.score > changed.score


def test_shipped_lexicon_is_well_formed():
    with gzip.open(LEXICON_PATH, "rb") as fh:
        data = json.loads(fh.read())
    assert data["version"].startswith("wordnet-3.0/")
    assert len(data["synsets"]) == len(data["links"]) > 100_000
    assert len(data["words"]) > 80_000 and len(data["antonyms"]) > 3_000
    assert (LEXICON_PATH.parent / "wordnet_LICENSE").read_text(encoding="utf-8").startswith("WordNet Release 3.0")
