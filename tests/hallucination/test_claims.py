from __future__ import annotations

import pytest

from gateway.hallucination.claims import answer_claims, is_abstention, mask_foils, mask_markup, split_claims


def spans(text: str, **kw) -> list[str]:
    claims = split_claims(text, **kw)
    for c in claims:
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip()
    return [c.text for c in claims]


def test_single_word_answer_is_one_claim():
    claims = split_claims("Delhi")
    assert [(c.start, c.end) for c in claims] == [(0, 5)]


def test_empty_and_blank_answers_have_no_claims():
    assert split_claims("") == []
    assert split_claims("   \n\n  ") == []
    assert split_claims("---\n* \n") == []


def test_sentences_with_offsets():
    text = "Revenue rose 5%. Profit fell! Did margins improve? Yes"
    claims = split_claims(text)
    assert [c.text for c in claims] == ["Revenue rose 5%.", "Profit fell!", "Did margins improve?", "Yes"]
    assert claims[1].start == text.index("Profit")
    assert claims[-1].end == len(text)


def test_abbreviations_initials_and_decimals_do_not_split():
    text = "Dr. Smith paid $3.5 million to J. K. Rowling in Jan. 2020, e.g. for rights. Then he left."
    assert spans(text) == [
        "Dr. Smith paid $3.5 million to J. K. Rowling in Jan. 2020, e.g. for rights.",
        "Then he left.",
    ]


def test_et_al_is_an_abbreviation_but_el_al_ends_a_sentence():
    assert spans("Smith et al. found the same. Jones did not.") == ["Smith et al. found the same.", "Jones did not."]
    assert spans("Oman opened its airspace to El Al. Previously, flights took hours longer.") == [
        "Oman opened its airspace to El Al.",
        "Previously, flights took hours longer.",
    ]


def test_lists_and_newlines():
    text = "Key points:\n- Sales grew 10%\n- Costs fell\n\n1. Hired 5 people\n2) Opened a store"
    assert spans(text) == ["Key points:", "Sales grew 10%", "Costs fell", "Hired 5 people", "Opened a store"]


def test_quotes_and_brackets_stay_with_their_sentence():
    assert spans('He said "it works." (Really.) Fine') == ['He said "it works."', "(Really.)", "Fine"]


def test_lowercase_after_period_is_not_a_new_claim():
    assert spans("The ratio was approx. three to one. Done.") == ["The ratio was approx. three to one.", "Done."]


def test_glued_sentences_split_only_on_request():
    text = "published in the 19th century.First for Women is a magazine."
    assert len(split_claims(text)) == 1
    assert spans(text, glued=True) == ["published in the 19th century.", "First for Women is a magazine."]


def test_long_sentence_is_cut_at_semicolons():
    text = "; ".join(f"clause number {i} says something about topic {i}" for i in range(12)) + "."
    claims = split_claims(text, max_chars=120)
    assert len(claims) > 1
    assert all(text[c.start : c.end] == c.text for c in claims)


@pytest.mark.parametrize("text", ["a", "3.5", "U.S.", "Hello\r\nWorld", "Ünïcödé sentence. Ñext one."])
def test_offsets_always_index_the_original(text):
    spans(text)


def answer_spans(text: str) -> list[str]:
    claims = answer_claims(text)
    for c in claims:
        assert text[c.start : c.end] == c.text
    return [c.text for c in claims]


def test_framing_only_claims_are_dropped():
    text = "Sure! The total is 420 dollars. I hope this helps!\nLet me know if you have any other questions."
    assert answer_spans(text) == ["The total is 420 dollars."]
    assert answer_spans("Certainly.") == []
    assert answer_spans("Here is the summary:\n- The total is 420 dollars.") == ["The total is 420 dollars."]


@pytest.mark.parametrize(
    ("text", "claim"),
    [
        ("Based on the provided context, the total is 420 dollars.", "the total is 420 dollars."),
        ("According to the documents: payment is due in March.", "payment is due in March."),
        ("In summary, sales rose.", "sales rose."),
        ("The context states that sales rose.", "sales rose."),
        ("Sure, sales rose.", "sales rose."),
    ],
)
def test_framing_lead_in_is_cut_off_its_claim(text, claim):
    assert answer_spans(text) == [claim]


@pytest.mark.parametrize(
    "text",
    [
        "Sure enough, sales fell.",  # no comma after the framing word: not a lead-in
        "The document was signed in March.",  # "the document" as the subject, not "says that"
        "According to the CFO, sales rose.",  # a source that is not the context
        "Let me explain: sales rose.",
    ],
)
def test_statements_that_only_look_like_framing_stay_whole(text):
    assert answer_spans(text) == [text]


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        ("Total is 420 dollars [1] and due on March 3 [1][2].", ["Total is 420 dollars and due on March 3 ."]),
        ("Total is 420 dollars [^1].\n\n[^1]: Invoice 7, page 2", ["Total is 420 dollars ."]),
        ("Total is 420 dollars (Source 1, 3).", ["Total is 420 dollars ."]),
        ("Total is 420 dollars (see document 2).", ["Total is 420 dollars ."]),
        ("Total is 420 dollars [doc 3].", ["Total is 420 dollars ."]),
        ("Total is 420 dollars【4:0†invoice.pdf】.\n\nSources:\n1. invoice.pdf", ["Total is 420 dollars ."]),
        ("### Answer\nTotal is **420 dollars**.", ["Total is 420 dollars ."]),
        ("**Summary:** Total is *420* dollars.", ["Total is 420 dollars."]),
        ("| Field | Value |\n|---|:---:|\n| Total | 420 dollars |", ["Total 420 dollars"]),
    ],
)
def test_markup_that_asserts_nothing_is_blanked(text, claims):
    found = answer_claims(text)
    assert [" ".join(c.text.split()) for c in found] == claims
    assert len(mask_markup(text)) == len(text)
    for c in found:  # offsets index the original; the claim text is that span, markup blanked
        assert len(text[c.start : c.end]) == len(c.text)


@pytest.mark.parametrize(
    "text",
    [
        "The ratio is 2*3 = 6.",  # arithmetic, not emphasis
        "Revenue rose 5% (2023).",  # a year in brackets is a fact
        "Item [A] costs 3 dollars.",
        "The summary was approved.",  # "summary" as a word, not a label
    ],
)
def test_text_that_is_not_markup_is_kept(text):
    assert mask_markup(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "I don't know.",
        "The provided context does not mention the CEO's salary.",
        "The documents do not specify a late fee.",
        "There is no information about a late fee in the context.",
        "I cannot find the supplier's phone number in the provided documents.",
        "That information is not available in the provided context.",
        "Unfortunately, the documents don't include the tax amount.",
    ],
)
def test_abstentions_are_not_claims(text):
    assert is_abstention(text) and answer_claims(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "The contract does not include a termination clause.",  # about the contract, not the context
        "Financial terms of the deal were not disclosed.",  # a news fact
        "The documents do not mention the 5% late fee.",  # carries a number to check
        "The invoice total is 420 dollars.",
    ],
)
def test_statements_are_not_abstentions(text):
    assert not is_abstention(text) and len(answer_claims(text)) == 1


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        ("No, the fee is 420 dollars.", ["the fee is 420 dollars."]),
        ("No, the invoice is not paid.", ["the invoice is not paid."]),  # its own negation stays
        ("No. The fee is 420 dollars.", ["The fee is 420 dollars."]),
        ("Yes! It is due on March 3.", ["It is due on March 3."]),
        ("No! The fee is 420 dollars.", ["The fee is 420 dollars."]),
        # a bare reply is the whole answer: it asserts something, so it stays a claim
        ("No.", ["No."]),
        ("yes", ["yes"]),
    ],
)
def test_a_reply_to_a_yes_no_question_is_no_negation_of_what_follows(text, claims):
    assert [c.text for c in answer_claims(text)] == claims


def test_clause_final_foils_are_blanked():
    for text, kept in [
        ("the fee is 420 dollars, not 500.", "the fee is 420 dollars"),
        ("it uses PostgreSQL, not MySQL.", "it uses PostgreSQL"),
        ("it costs $420 rather than $1,500!", "it costs $420"),
    ]:
        masked = mask_foils(text)
        assert len(masked) == len(text) and masked.rstrip(" .!") == kept
    # not clause-final, or not a number or a name: a claim, kept whole
    for text in ("The fee is not 500 dollars.", "It is approved for adults, not children."):
        assert mask_foils(text) == text
