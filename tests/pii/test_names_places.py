"""Name and place lists, the recognizers built on them, and their reconciliation with spaCy."""

import pytest

from gateway.pii import gazetteers
from gateway.pii.names_places import GazetteerNameRecognizer, PlaceRecognizer


def found(text, ents):
    return {(e.type, text[e.start : e.end]) for e in ents}


def spans(recognizer, text):
    return {(r.entity_type, text[r.start : r.end]) for r in recognizer.analyze(text, [])}


def test_lists_load_and_hold_what_they_should():
    assert "patricia" in gazetteers.first_names()
    assert "will" not in gazetteers.first_names()  # an English word first, a name second
    assert "andersson" in gazetteers.last_names()
    assert {"norway", "czech republic", "ontario", "texas"} <= gazetteers.countries()
    assert "trondheim" in gazetteers.places()
    assert "trondheim" not in gazetteers.first_names()


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Scott is a very sympathetic person.", "Scott"),
        ("Maybe it's under Faina D. Yefremova", "Faina D. Yefremova"),
        ("Have you been to a Ravil G Yefimov concert before?", "Ravil G Yefimov"),
        ("Julieta S Almeida\n\nStaff development specialist", "Julieta S Almeida"),
    ],
)
def test_known_first_names_and_initial_shapes(text, name):
    assert ("PERSON", name) in spans(GazetteerNameRecognizer(), text)


def test_ambiguous_words_and_places_are_not_names_alone():
    rec = GazetteerNameRecognizer()
    assert spans(rec, "Will you grant access? May I help? Mark the box.") == set()
    # a major city that is also a first name needs more than the list
    assert spans(rec, "Florence is lovely in spring.") == set()
    # a first name after a place word is part of the place
    assert ("PERSON", "Elizabeth") not in spans(rec, "We sailed from Port Elizabeth.")


def test_lists_of_first_names():
    text = "They had 6: Efimiya, Mary, Ariana, Isabel, Teresa and Jodi."
    got = spans(GazetteerNameRecognizer(), text)
    for name in ("Efimiya", "Mary", "Ariana", "Isabel", "Teresa", "Jodi"):
        assert ("PERSON", name) in got
    # a firm of surnames has no first name in it
    assert ("PERSON", "Jones") not in spans(GazetteerNameRecognizer(), "She joined Jones, Mitchell and Williams.")


def test_cue_words_dialogue_and_address():
    rec = GazetteerNameRecognizer()
    assert ("PERSON", "Asya") in spans(rec, "Asya spent a year at Allstate Insurance Group.")
    assert ("PERSON", "Warrane") in spans(rec, "Warrane, can I please speak to your boss?")
    got = spans(rec, "Ubul: What a wife.\nNicole: Remember me, Mary?")
    assert {("PERSON", "Ubul"), ("PERSON", "Nicole")} <= got
    # one label line is not a dialogue
    assert spans(rec, "Note: the build is green.") == set()
    # companies say things too
    assert spans(rec, "Microsoft said it would.") == set()


def test_text_without_capitals():
    rec = GazetteerNameRecognizer()
    assert ("PERSON", "lena andersson") in spans(rec, "could you block my card? my name is lena andersson.")
    # in ordinary cased text a lower-case word is a word
    assert spans(rec, "I met patricia at the gym.") == set()


def test_places():
    rec = PlaceRecognizer()
    assert ("LOCATION", "Norway") in spans(rec, "Norway is expensive.")
    assert ("LOCATION", "Trondheim") in spans(rec, "We moved to Trondheim last year.")
    # a town name without a word that places it is not enough ("Reading", "Mobile", "Bath")
    assert ("LOCATION", "Reading") not in spans(rec, "Reading is fun.")
    # after a phrase that only introduces a place, an unknown name is one
    assert ("LOCATION", "Staxroith") in spans(rec, "Mr. Pavlovic flew to Staxroith on Monday morning.")
    assert ("LOCATION", "Chiclana de la Frontera") in spans(rec, "I live in Chiclana de la Frontera now.")
    # a country that is also a first name needs a place word
    assert spans(rec, "Jordan called me.") == set()
    assert ("LOCATION", "Jordan") in spans(rec, "She flew to Jordan.")


def test_end_to_end_relabels_spacy(analyzer):
    text = "Mr. Matthews is a 36 year old man who grew up in Trondheim."
    got = found(text, analyzer.analyze([text])[0])
    assert ("PERSON", "Matthews") in got
    assert ("LOCATION", "Trondheim") in got
    text = "Who's coming to Czech Republic with me?"
    assert ("LOCATION", "Czech Republic") in found(text, analyzer.analyze([text])[0])
    text = "Martin Karlsen\n\nLos Angeles\nUnited States"
    got = found(text, analyzer.analyze([text])[0])
    assert ("LOCATION", "Los Angeles") in got
    assert ("PERSON", "Angeles") not in got


def test_uncased_text_is_analysed_for_names(analyzer):
    text = "follow up with benjamin a seiler in a couple of months."
    assert ("PERSON", "benjamin a seiler") in found(text, analyzer.analyze([text])[0])


@pytest.mark.parametrize(
    ("text", "name"),
    [
        # names from outside the US lists, given away by a surname shape or a listed surname
        ("Please loop in Dragana Petrović before Friday.", "Dragana Petrović"),
        ("Send the contract to Hiroko Takahashi today.", "Hiroko Takahashi"),
        # phrases that only introduce a person, in any case
        ("Can I add my daughter Ilse to the policy?", "Ilse"),
        ("hi, my name is dorota wiśniewska and I lost my card", "dorota wiśniewska"),
        ("Our tenant, Mrs. Okonkwo, has not paid.", "Okonkwo"),
        # a verb only people do, opening a sentence
        ("Jarmila lives on the third floor.", "Jarmila"),
        # surnames as a group of people
        ("Kowalczyk and Brandt were both at the meeting.", "Kowalczyk"),
    ],
)
def test_names_by_their_company(text, name):
    assert ("PERSON", name) in spans(GazetteerNameRecognizer(), text)


def test_company_cues_do_not_make_names():
    rec = GazetteerNameRecognizer()
    # a firm named after partners, a shouted sentence, inflected English words, a place pair
    assert ("PERSON", "Becker") not in spans(rec, "She moved from Hawkins, Becker and Vasquez to a bank.")
    assert spans(rec, "IF MY NAME IS SAID, I WILL RESPOND.") == set()
    assert spans(rec, "The Akashic Records and Called Numbers are topics.") == set()
    assert spans(rec, "We hiked from Lake Louise to Banff National Park.") == set()
