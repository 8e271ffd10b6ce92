"""The learned name tagger (gateway/pii/tagger.py), whole-name spans and request-wide names
(gateway/pii/names.py), and the recall-first external zone (PiiPolicy.recall_first)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gateway.pii.analyzer import PiiAnalyzer
from gateway.pii.config import PiiPolicy
from gateway.pii.entities import Entity
from gateway.pii.names import TITLED_SCORE, propagate, whole_names
from gateway.pii.tagger import (
    LABELS,
    WEIGHTS,
    NameTagger,
    Tagged,
    TaggerWeightsError,
    _windows,
    build_module,
    depth,
    get_tagger,
    sentence_starts,
    spans,
    trainable_state,
    words_of,
)
from gateway.pii.transform import for_zone, inspect_request_sync, transform_request


def found(text: str, ents: list[Entity]) -> set[tuple[str, str]]:
    return {(e.type, text[e.start : e.end]) for e in ents}


@pytest.fixture(scope="module")
def tagger_only() -> PiiAnalyzer:
    return PiiAnalyzer(PiiPolicy())


# -- weights ----------------------------------------------------------------------------------


def test_missing_or_corrupt_weights_are_a_clear_error_naming_the_rebuild_script(tmp_path):
    with pytest.raises(TaggerWeightsError, match=r"missing; rebuild them with scripts/train_ner.py"):
        NameTagger(tmp_path / "absent.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(TaggerWeightsError, match=r"unreadable .*scripts/train_ner.py"):
        NameTagger(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, other=np.zeros(3))
    with pytest.raises(TaggerWeightsError, match=r"lack"):
        NameTagger(partial)


def test_the_weights_file_says_how_deep_the_tagger_is(tmp_path):
    # scripts/train_ner.py --layers N: a shallower tagger loads from its file alone, no code change.
    state = trainable_state(build_module(layers=2))
    assert depth(state) == 2
    path = tmp_path / "two_layers.npz"
    np.savez(path, **state)
    tagged = NameTagger(path).tag(["ask ruth abernathy"])[0]
    assert tagged.probs.shape == (3, len(LABELS))


def test_unknown_precision_is_refused(monkeypatch):
    monkeypatch.setenv("BULKHEAD_TAGGER_PRECISION", "fp8")
    with pytest.raises(TaggerWeightsError, match="auto, fp32, bf16, int8"):
        NameTagger(WEIGHTS)


def test_the_committed_weights_are_compact():
    assert WEIGHTS.stat().st_size < 30_000_000


# -- decoding ---------------------------------------------------------------------------------


def _tagged(text: str, rows: list[dict[str, float]]) -> Tagged:
    probs = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    for i, row in enumerate(rows):
        for label, p in row.items():
            probs[i, LABELS.index(label)] = p
        probs[i, 0] = 1 - sum(row.values())
    return Tagged(words_of(text), probs)


def test_spans_grow_over_half_believed_neighbours_and_split_where_a_new_name_begins():
    text = "ask ruth abernathy and Li"
    t = _tagged(text, [{}, {"B-PER": 0.9}, {"I-PER": 0.3}, {}, {"B-PER": 0.45}])
    assert [(s.type, text[s.start : s.end]) for s in spans(text, t, 0.5)] == [("PERSON", "ruth")]
    got = spans(text, t, 0.5, grow=0.25)
    assert [(s.type, text[s.start : s.end], round(s.score, 2)) for s in got] == [("PERSON", "ruth abernathy", 0.9)]
    assert [text[s.start : s.end] for s in spans(text, t, 0.4, grow=0.25)] == ["ruth abernathy", "Li"]
    two = "Ana Bo"
    t = _tagged(two, [{"B-PER": 0.9}, {"B-PER": 0.8}])
    assert [two[s.start : s.end] for s in spans(two, t, 0.5)] == ["Ana", "Bo"]
    place = "Oslo Nilsson"
    t = _tagged(place, [{"B-LOC": 0.9}, {"B-PER": 0.8}])
    assert [(s.type, place[s.start : s.end]) for s in spans(place, t, 0.5)] == [
        ("LOCATION", "Oslo"), ("PERSON", "Nilsson")]


def test_a_span_of_one_letter_or_a_word_spelled_out_names_nothing():
    text = "the U.S. team and http://t.co/x"
    # words: the U . S . team and http : / / t . co / x
    t = _tagged(text, [{}, {"B-LOC": 0.9}, {}, {"B-LOC": 0.9}] + [{}] * 7 + [{"B-ORG": 0.9}] + [{}] * 4)
    assert [text[s.start : s.end] for s in spans(text, t, 0.5)] == []
    t = _tagged(text, [{}, {"B-LOC": 0.9}, {"I-LOC": 0.9}, {"I-LOC": 0.9}, {"I-LOC": 0.9}] + [{}] * 11)
    assert [text[s.start : s.end] for s in spans(text, t, 0.5)] == ["U.S."]
    heading = "J U D G M E N T of J R R Tolkien"
    t = _tagged(heading, [{"B-PER": 0.9}] + [{"I-PER": 0.9}] * 7 + [{}, {"B-PER": 0.9}] + [{"I-PER": 0.9}] * 3)
    assert [heading[s.start : s.end] for s in spans(heading, t, 0.5)] == ["J R R Tolkien"]


def test_windows_never_cut_a_word_and_cover_every_piece():
    word_of = [i // 3 for i in range(1000)]  # every word three pieces long
    windows = _windows(word_of, 190, 48)
    assert windows[0][0] == 0 and windows[-1][1] == 1000
    for (_a, b), (c, _d) in zip(windows, windows[1:], strict=False):
        assert c < b  # they overlap
        assert word_of[b - 1] != word_of[b] and word_of[c - 1] != word_of[c]
    assert all(b - a <= 190 for a, b in windows)


def test_windows_end_where_a_sentence_begins_and_overlap_only_where_none_does():
    word_of = [i // 2 for i in range(600)]  # every word two pieces long
    starts = [False] * 600
    for s in (170, 330):  # two sentences begin within the last 48 pieces of a window
        starts[s] = True
    windows = _windows(word_of, 190, 48, starts)
    assert windows[:3] == [(0, 170), (170, 330), (330, 520)]
    assert windows[3][0] < 520 and windows[-1][1] == 600  # no sentence near 520: overlap as before
    starts[60] = True  # too early in the window to end it there
    assert _windows(word_of, 190, 48, starts)[0] == (0, 170)


def test_sentences_begin_after_a_line_break_or_a_full_stop_but_not_after_a_title():
    text = "Call Dr. Okafor today. then ask U.S. staff\nabout that! Fine"
    words = words_of(text)
    begun = [text[a:b] for (a, b), yes in zip(words, sentence_starts(text, words), strict=True) if yes]
    assert begun == ["Call", "then", "about", "Fine"]


def test_names_in_a_long_text_are_found_in_every_window(tagger_only):
    filler = "The quarterly report covers revenue, costs and the outlook for next year. "
    names = ["Ingrid Johansen", "Tomasz Wiśniewski", "Adaeze Okafor", "Henrik Lindqvist", "Mariana Costa"]
    text = "".join(filler * 4 + f"Please send it to {n} today. " for n in names)
    got = found(text, tagger_only.analyze([text])[0])
    assert {("PERSON", n) for n in names} <= got


def test_places_deep_into_running_text_are_each_found_as_places(tagger_only):
    # A paragraph, not a sentence: the tagger trained on single sentences read places far into a long
    # window worse (bench/RESULTS.md, 2026-12-07 (2)); each occurrence must be found, as a place.
    places = ["La Paz", "El Alto", "Sucre", "Potosí", "Oruro", "Cochabamba", "Tarija", "Trinidad", "Cobija",
              "Uyuni", "Tupiza", "Villazón", "Camiri", "Yacuiba", "Riberalta", "Montero"]
    text = " ".join(f"On day {i + 1} the survey team drove from {a} to {b}, logged the samples and slept in {b} "
                    "before moving on." for i, (a, b) in enumerate(itertools.pairwise(places)))
    assert len(text) > 1500
    got = [(e.type, text[e.start : e.end]) for e in tagger_only.analyze([text])[0]]
    assert sorted(got) == sorted(("LOCATION", p) for p in [places[0], *(p for p in places[1:-1] for _ in "abc"),
                                                            places[-1], places[-1]])


# -- what the tagger reads --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("can you email hiroshi watanabe about the offsite", "hiroshi watanabe"),
        ("SEND THE DRAFT TO GRETA SVENSSON BY NOON", "GRETA SVENSSON"),
        ("thanks again to Ngozi for covering my shift", "Ngozi"),
        ("the plumber Kowalczyk fixed the leak", "Kowalczyk"),
        ("meeting notes: Dubois and Agarwal disagreed on pricing", "Agarwal"),
    ],
)
def test_names_are_found_in_any_case_and_standing_alone(tagger_only, text, name):
    assert ("PERSON", name) in found(text, tagger_only.analyze([text])[0])


def test_ordinary_capitalised_words_are_not_names(tagger_only):
    for text in ("Will you check the build again?", "Grant access to the staging bucket.",
                 "Please Summarise The Attached Report", "May I ask what the refund policy is?"):
        assert not [e for e in tagger_only.analyze([text])[0] if e.type == "PERSON"], text


# -- whole names ------------------------------------------------------------------------------


def test_titles_suffixes_and_nicknames_join_the_name():
    text = 'Ms. Ines Varga met Peter Olsen MD and Maria "Mia" Gonzalez'
    ents = [Entity("PERSON", 4, 14, 0.9), Entity("PERSON", 19, 30, 0.9), Entity("PERSON", 38, 43, 0.9),
            Entity("PERSON", 45, 48, 0.8), Entity("PERSON", 50, 58, 0.9)]
    got = found(text, whole_names(text, ents))
    assert got == {("PERSON", "Ms. Ines Varga"), ("PERSON", "Peter Olsen MD"), ("PERSON", 'Maria "Mia" Gonzalez')}


def test_a_title_the_tagger_reads_as_a_name_of_its_own_joins_the_name_after_it():
    text = "U.S. President Donald Trump met Ana, Bo Li"
    ents = [Entity("PERSON", 0, 14, 0.8), Entity("PERSON", 15, 27, 0.99), Entity("PERSON", 32, 35, 0.9),
            Entity("PERSON", 37, 42, 0.9)]
    got = found(text, whole_names(text, ents))
    assert got == {("PERSON", "U.S. President Donald Trump"), ("PERSON", "Ana"), ("PERSON", "Bo Li")}


def test_a_title_before_an_unfound_word_is_a_name_but_not_before_an_english_word():
    text = "Dr. Oyelaran will see you; book a Dr. Appointment with Mr Right"
    got = whole_names(text, [])
    assert [(text[e.start : e.end], e.score) for e in got] == [("Dr. Oyelaran", TITLED_SCORE)]
    # Initials before the name, glued or spaced, as court records write them.
    text = "For Rr 4 & 5 : Mr. S.Parthasarathy , S.C.; seen by Dr. A. J. Okafor"
    assert [text[e.start : e.end] for e in whole_names(text, [])] == ["Mr. S.Parthasarathy", "Dr. A. J. Okafor"]


def test_a_name_found_once_is_covered_wherever_it_occurs_in_the_request():
    texts = ["please add ruth abernathy as guardian", "ABERNATHY signed; Ruth agreed. Rose said the price rose"]
    ents = [[Entity("PERSON", 11, 25, 0.95)], []]
    got = propagate(texts, ents)
    assert found(texts[1], got[1]) == {("PERSON", "ABERNATHY"), ("PERSON", "Ruth")}
    assert all(e.score == 0.95 for e in got[1])
    # A part that is an English word is matched with its capital only.
    texts = ["Rose Tyler called", "Rose said the price rose"]
    got = propagate(texts, [[Entity("PERSON", 0, 10, 0.9)], []])
    assert [texts[1][e.start : e.end] for e in got[1]] == ["Rose"]


def test_the_analyzer_covers_a_name_across_messages(tagger_only):
    texts = ["my colleague Okwuosa Ifeanyichukwu will join", "ask okwuosa about the budget"]
    got = tagger_only.analyze(texts)
    assert ("PERSON", "okwuosa") in found(texts[1], got[1])


# -- recall-first external zone ---------------------------------------------------------------


def test_recall_first_thresholds_are_validated_and_apply_to_the_external_zone_only():
    with pytest.raises(ValueError, match="unknown entity type 'PERSN'"):
        PiiPolicy(recall_first={"PERSN": 0.2})
    with pytest.raises(ValueError, match="between 0 and 1"):
        PiiPolicy(recall_first={"PERSON": 2})
    p = PiiPolicy(recall_first={"PERSON": 0.15})
    assert p.zone_threshold("PERSON", "external") == 0.15
    assert p.zone_threshold("PERSON", "internal") == p.threshold("PERSON") == 0.4
    assert p.keep_threshold("PERSON") == 0.15 and p.keep_threshold("EMAIL_ADDRESS") == 0.4


def test_a_low_scoring_name_is_pseudonymized_for_external_backends_only():
    policy = PiiPolicy(recall_first={"PERSON": 0.15}, treatment={"internal": {"PERSON": "redact"}})
    body = {"messages": [{"role": "user", "content": "ping Zorvath and Maria Gonzalez"}]}
    analyzer = PiiAnalyzer(policy)
    inspection = inspect_request_sync(body, analyzer)
    # Make one detection a weak one, as the tagger gives a doubtful word.
    ents = inspection.entities[0]
    weak = [Entity(e.type, e.start, e.end, 0.2) if "Zorvath" in body["messages"][0]["content"][e.start : e.end]
            else e for e in ents]
    inspection.entities[0] = weak
    assert len(for_zone(inspection, policy, "internal").entities[0]) == len(weak) - 1
    outbound = transform_request(body, inspection, policy, "external").body["messages"][0]["content"]
    inside = transform_request(body, inspection, policy, "internal").body["messages"][0]["content"]
    assert "Zorvath" not in outbound and "Gonzalez" not in outbound
    assert "Zorvath" in inside and "Gonzalez" not in inside


def test_the_shared_tagger_is_one_instance():
    assert get_tagger() is get_tagger()


def test_a_texts_labels_do_not_depend_on_what_it_is_batched_with():
    """Concurrent requests share passes (gateway/batching.py); each text's probabilities must be what
    it gets alone, bit for bit, whatever the precision (int8 runs one unpadded window a call)."""
    from concurrent.futures import ThreadPoolExecutor

    tagger = get_tagger()
    texts = [f"please add ruth abernathy{i} as guardian for Lars Nilsson in Oslo " * (1 + i % 3) for i in range(24)]
    alone = [tagger.tag([t])[0].probs for t in texts]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda t: tagger.tag([t])[0].probs, texts))
    in_one_call = [tagged.probs for tagged in tagger.tag(texts)]
    # int8 (the default) is bit for bit; an exact precision pads a batch, which may move the last bits
    same = np.array_equal if tagger.runner.rows_per_call == 1 else (lambda a, b: np.allclose(a, b, atol=1e-5))
    assert all(same(a, b) for a, b in zip(alone, together, strict=True))
    assert all(same(a, b) for a, b in zip(alone, in_one_call, strict=True))


def test_a_masked_value_reads_as_its_placeholder_and_is_never_a_name():
    """A value the pattern recognizers found reaches the encoder as one placeholder word: the other
    words' labels are exactly those of the text written with the placeholder, and the value's words
    are O whatever the model would say of them."""
    tagger = get_tagger()
    iban = "DE89 3704 0044 0532 0130 00"
    text = f"Transfer 500 EUR to IBAN {iban} for Chiara Eze tomorrow."
    start = text.index(iban)
    masked = tagger.tag([text], [[(start, start + len(iban), "IBAN_CODE")]])[0]
    written = tagger.tag([text.replace(iban, "number")])[0]
    inside = [k for k, (a, b) in enumerate(masked.words) if start <= a and b <= start + len(iban)]
    assert len(inside) == 6
    assert not masked.probs[inside].any()
    outside = [k for k in range(len(masked.words)) if k not in inside]
    around = [k for k in range(len(written.words)) if k != inside[0]]
    assert np.array_equal(masked.probs[outside], written.probs[around])


def test_the_analyzer_masks_what_the_patterns_found_but_not_addresses(tagger_only):
    text = "Mail ana.dias@example.org, call +44 20 7946 0018, or visit 12 Baker Street, London."
    results = tagger_only.engine.analyze(text, language="en", entities=["EMAIL_ADDRESS", "PHONE_NUMBER", "ADDRESS"])
    kinds = {kind for _a, _b, kind in tagger_only._hard_spans(text, results)}
    assert kinds == {"EMAIL_ADDRESS", "PHONE_NUMBER"}
