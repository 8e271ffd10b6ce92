"""The tagger's training converters: what a corpus' annotation becomes (no corpus needed)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training" / "ner" / "sources"))

import common
import crossner
import litbank
import sec_filings


def _brat(text: str, mentions: list[tuple[str, str]]) -> str:
    """brat lines for each (kind, surface) at its first occurrence in text."""
    rows = []
    for i, (kind, surface) in enumerate(mentions):
        a = text.index(surface)
        rows.append(f"T{i}\t{kind} {a} {a + len(surface)}\t{surface}")
    return "\n".join(rows) + "\n"


def test_litbank_keeps_proper_names_cut_to_the_name_and_drops_nominals():
    text = "Sir Walter Elliot , of Kellynch Hall , read .\nHis wife smiled at the printer .\n"
    ann = _brat(text, [("PROP_PER", "Sir Walter Elliot"), ("PROP_FAC", "Kellynch Hall"),
                       ("NOM_PER", "His wife"), ("NOM_PER", "the printer")])
    counters = Counter()
    out = list(litbank.convert_doc(text, ann, counters))
    assert out[0] == (["Sir", "Walter", "Elliot", ",", "of", "Kellynch", "Hall", ",", "read", "."],
                      ["O", "B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O", "O", "O"])
    assert out[1][1] == ["O"] * 7  # nominal mentions are not names
    assert not counters["dropped_sentences"]


def test_litbank_cuts_a_mention_before_its_comma_and_tags_the_mentions_inside_it():
    text = "Elizabeth , daughter of James Stevenson , Esq. of South Park , wed .\n"
    ann = _brat(text, [("PROP_PER", "Elizabeth"), ("PROP_PER", "James Stevenson , Esq. of South Park"),
                       ("PROP_GPE", "South Park")])
    (tokens, tags), = litbank.convert_doc(text, ann, Counter())
    named = {tokens[i]: t for i, t in enumerate(tags) if t != "O"}
    assert named == {"Elizabeth": "B-PER", "James": "B-PER", "Stevenson": "I-PER", "South": "B-LOC",
                     "Park": "I-LOC"}


def test_litbank_drops_a_sentence_whose_proper_mention_reduces_to_no_name():
    text = "the old man , our friend went home .\nAnne stayed .\n"
    ann = _brat(text, [("PROP_PER", "the old man , our friend"), ("PROP_PER", "Anne")])
    counters = Counter()
    out = list(litbank.convert_doc(text, ann, counters))
    assert [t for t, _ in out] == [["Anne", "stayed", "."]]
    assert counters["dropped_sentences"] == 1


def test_crossner_reads_person_subtypes_as_persons_and_titles_as_nothing():
    raw = ["B-writer", "I-writer", "O", "B-book", "I-book", "O", "B-country", "B-band"]
    assert common.to_bio(raw, crossner.MAPPING) == ["B-PER", "I-PER", "O", "O", "O", "O", "B-LOC", "B-ORG"]


def test_sec_filings_defined_parties_are_roles_not_names():
    tokens = ["Borrower", "shall", "pay", "Lender", "and", "Silicon", "Valley", "Bank", "per", "John", "Smith"]
    tags = ["B-PER", "O", "O", "B-PER", "O", "B-ORG", "I-ORG", "I-ORG", "O", "B-PER", "I-PER"]
    assert sec_filings.without_roles(tokens, tags) == [
        "O", "O", "O", "O", "O", "B-ORG", "I-ORG", "I-ORG", "O", "B-PER", "I-PER"]


def test_training_draw_joins_a_share_of_neighbouring_sentences_into_passages():
    from training.ner.dataset import PASSAGE_WORDS, training_draw

    rows = [([f"w{i}", "said", f"Name{i}", "."], ["O", "O", "B-PER", "O"]) for i in range(400)]
    by_group = {"a": rows, "left": rows[:5]}
    singles = training_draw(by_group, {"left"}, passages=0)
    assert singles == rows  # nothing joined: the sentences themselves, in corpus order
    joined = training_draw(by_group, {"left"}, passages=0.5)
    # Every word and tag is still there once, in order; only the cuts moved.
    assert [w for t, _ in joined for w in t] == [w for t, _ in rows for w in t]
    assert [g for _, tags in joined for g in tags] == [g for _, tags in rows for g in tags]
    lengths = [len(t) for t, _ in joined]
    assert max(lengths) <= PASSAGE_WORDS[1] and sum(n >= PASSAGE_WORDS[0] for n in lengths) > 10
    assert joined == training_draw(by_group, {"left"}, passages=0.5)  # fixed seed
