"""Names introduced by the words around them (PERSON): "my name is", "Dear", "Mr.", "Name:".

`IntroducedNameRecognizer` takes the capitalised words after a phrase that introduces a person
(score 0.6), and, as weaker evidence, two or three capitalised words right after a preposition or
a role word where a person is a likely object ("reply to Beatriz Moreno", score 0.45). It
complements spaCy's small model, which misses rare and foreign names exactly where people
introduce themselves. `_NOT_NAMES` and `_NOT_NAME_WORDS` are the capitalised words that such cues
are followed by without naming anyone; the other name finders (name_cues.py, names_places.py) veto
them too.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult

from gateway.pii.recognizers import _result

_NAME = r"[^\W\d_a-z][^\W\d_]*(?:['’\-][^\W\d_]+)?"  # a capitalised word, any script
_FULL_NAME = rf"{_NAME}(?:[ \t]+(?:{_NAME}|[^\W\d_a-z]\.?(?![^\W\d_]))){{0,3}}"
_NAME_CUES = re.compile(
    r"(?i:\b(?:my name is|name is|names? (?:are|were)|i am|i'm|this is|called|named|call me|signed|regards,|"
    r"sincerely,|thanks,|dear|hi|hello|hey|mr\.?|mrs\.?|ms\.?|miss|mx\.?|dr\.?|prof\.?|sir|madam|"
    r"(?:full |first |last |maiden |user|patient|customer|client|employee|contact |account )?name:?|"
    r"(?:patient|customer|client|employee|contact|attn|from|to|cc|author|user)\s*:|"
    r"(?:said|says|asked|told) to)"
    r"|name\?)[ \t]+(" + _FULL_NAME + ")"
)
_NOT_NAMES = frozenset(
    {
        "I",
        "A",
        "The",
        "This",
        "That",
        "It",
        "We",
        "You",
        "He",
        "She",
        "They",
        "Here",
        "There",
        "Not",
        "So",
        "Very",
        "Just",
        "Sorry",
        "Happy",
        "Glad",
        "Sure",
        "Yes",
        "No",
        "Please",
        "Thank",
        "Thanks",
        "What",
        "How",
        "Why",
        "When",
        "Where",
        "Who",
        "Is",
        "Are",
        "My",
        "Your",
        "Our",
        "Hi",
        "Hello",
        "Going",
        "Looking",
        "Trying",
        "Interested",
        "Fine",
        "Good",
        "Great",
        "Okay",
        "OK",
        "All",
    }
)


# Weaker evidence: two or three capitalised words (Firstname Lastname) right after a preposition or
# a role word, where a person is a likely object ("reply to Beatriz Moreno", "admin is Lars Berg").
# Scored under spaCy, so where the model calls the same words a place, the place wins.
_NAME_PAIR_CUES = re.compile(
    r"(?i:\b(?:to|for|by|with|cc|is|was|reporter|assignee|owner|admin|manager|contact|attention|via|"
    r"requester|approver|reviewer|author|customer|client|patient|employee|tenant|user)\b:?)[ \t]+"
    r"((?:[^\W\d_a-z][^\W\d_A-Z]+['’\-]?){1,2}(?:[ \t]+[^\W\d_a-z][^\W\d_A-Z]+(?:['’\-][^\W\d_]+)?){1,2})"
    r"(?![ \t]+(?:Inc|Ltd|LLC|GmbH|Corp|Co|Company|Group|Bank|University|Street|St|Road|Rd|Avenue|Ave|"
    r"Lane|Drive|Boulevard|Court|Terrace|Way|Place|Square|Park|River|Mountains?|Lake|Island|City|County|State|Republic)\b)"
)
_NOT_NAME_WORDS = frozenset(
    {
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "January",
        "February",
        "March",
        "April",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
        "The",
        "This",
        "That",
        "These",
        "Those",
        "New",
        "North",
        "South",
        "East",
        "West",
        "United",
        "Saint",
        "San",
        "Los",
        "Las",
        "Mount",
        # organisation and place words that follow a capitalised word
        "Orchestra",
        "Associates",
        "Technologies",
        "Solutions",
        "Capital",
        "Weekly",
        "Union",
        "Pass",
        "Route",
        "Gateway",
        "Coves",
        "Parks",
        "Village",
        "Port",
        "Systems",
        "Partners",
        "Services",
        "Labs",
        "Media",
        "Foundation",
        "Institute",
        "Hospital",
        "School",
        "College",
        "Airport",
        "Station",
        "Center",
        "Centre",
        "Hotel",
        "Club",
        "Team",
        "Project",
        "Bay",
        "Valley",
        "Heights",
        "Hills",
        "Springs",
        "Beach",
        "Falls",
        "Harbor",
        "Harbour",
    }
)


class IntroducedNameRecognizer(EntityRecognizer):
    """PERSON where the words before a capitalised name say it is one: "my name is", "Dear",
    "Mr.", "Name:", "said ... to". It complements spaCy's small model, which misses rare and
    foreign names exactly where people introduce themselves."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="IntroducedNameRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for m in _NAME_CUES.finditer(text):
            name = m.group(1)
            words = name.split()
            while words and words[-1].rstrip(".") in _NOT_NAMES:
                words.pop()
            if not words or words[0] in _NOT_NAMES:
                continue
            start = m.start(1)
            out.append(
                _result(
                    self,
                    "PERSON",
                    start,
                    start + len(" ".join(words))
                    if len(words) == len(name.split())
                    else start + name.find(words[-1]) + len(words[-1]),
                    0.6,
                )
            )
        for m in _NAME_PAIR_CUES.finditer(text):
            words = m.group(1).split()
            if any(w in _NOT_NAMES or w in _NOT_NAME_WORDS for w in words):
                continue
            out.append(_result(self, "PERSON", m.start(1), m.end(1), 0.45))
        return out
