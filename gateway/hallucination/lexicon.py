"""WordNet 3.0 synonyms and antonyms for the grounding check (`data/wordnet_lexicon.json.gz`).

Built by `scripts/build_wordnet_lexicon.py` from the WordNet database files; loaded once per
process (~1 MB compressed, well under a second) and read only through `Lexicon.related`,
`Lexicon.related2` and `Lexicon.antonyms`, which take a surface word ("recaptured") and answer in
the grounding check's crude stems (`stems.py`), so the caller compares them with the stems it
already holds for the context.
"""

from __future__ import annotations

import gzip
import json
import threading
from functools import lru_cache
from pathlib import Path

from gateway.hallucination.stems import stem

LEXICON_PATH = Path(__file__).resolve().parent / "data" / "wordnet_lexicon.json.gz"

# WordNet's own detachment rules (morphy): suffix -> base ending, tried in order
_DETACH = (
    ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y"),
    ("s", ""), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""),
    ("er", ""), ("est", ""), ("er", "e"), ("est", "e"),
)


class Lexicon:
    def __init__(self, data: dict) -> None:
        self._stem = stem
        self._words: list[str] = data["words"]
        self._synsets: list[list[int]] = data["synsets"]
        self._links: list[list[int]] = data["links"]
        self._exceptions: dict[str, list[str]] = data["exceptions"]
        self._of_word: dict[str, list[int]] = {}
        for n, members in enumerate(self._synsets):
            for w in members:
                self._of_word.setdefault(self._words[w], []).append(n)
        self._antonyms: dict[str, set[str]] = {}
        for a, b in data["antonyms"]:
            self._antonyms.setdefault(a, set()).add(b)
            self._antonyms.setdefault(b, set()).add(a)
        self._first = lru_cache(maxsize=16384)(self._first_words)
        self.related = lru_cache(maxsize=16384)(self._related)
        self.related2 = lru_cache(maxsize=16384)(self._related2)
        self.antonyms = lru_cache(maxsize=16384)(self._antonym_stems)

    def is_word(self, word: str) -> bool:
        """Whether WordNet knows `word` (any inflection) as one word: "healthcare", "email"."""
        return bool(self.lemmas(word))

    def cache_clear(self) -> None:
        """Forget every word looked up (the benchmark's cold case: each call's words seen afresh)."""
        for cached in (self._first, self.related, self.related2, self.antonyms):
            cached.cache_clear()

    @classmethod
    def load(cls, path: Path | str = LEXICON_PATH) -> Lexicon:
        with gzip.open(path, "rb") as fh:
            return cls(json.loads(fh.read()))

    def lemmas(self, word: str) -> list[str]:
        """The WordNet base forms a surface word may stand for ("children" -> ["child"])."""
        w = word.lower().replace("’", "'")
        out = [w] if w in self._of_word else []
        out += [b for b in self._exceptions.get(w, ()) if b in self._of_word]
        for suffix, ending in _DETACH:
            if w.endswith(suffix) and len(w) > len(suffix) + 1:
                base = w[: len(w) - len(suffix)] + ending
                if base in self._of_word:
                    out.append(base)
        if len(w) > 5 and w.endswith(("ed", "ing")):
            bare = w[:-2] if w.endswith("ed") else w[:-3]
            if bare[-1] == bare[-2] and bare[:-1] in self._of_word:  # "stopped" -> "stop"
                out.append(bare[:-1])
        return list(dict.fromkeys(out))

    def _near(self, lemma: str) -> set[int]:
        near: set[int] = set()
        for n in self._of_word.get(lemma, ()):
            near.add(n)
            near.update(self._links[n])
        return near

    def _neighbours(self, words) -> frozenset[str]:
        """Words sharing a synset with any of `words`, or with a synset linked to one of them."""
        out: set[str] = set()
        for word in words:
            for n in self._near(word):
                out.update(self._words[w] for w in self._synsets[n])
        return frozenset(out)

    def _first_words(self, word: str) -> frozenset[str]:
        return self._neighbours(self.lemmas(word))

    def _related(self, word: str) -> frozenset[str]:
        """Stems one step away: words sharing a synset with the word or with a synset linked to it
        (the word's own stem left out)."""
        return frozenset({self._stem(w) for w in self._first(word)} - {self._stem(word)})

    def _related2(self, word: str) -> frozenset[str]:
        """Stems two steps away and no nearer: the same again from each one-step word. Several times
        the work of one step, so the caller asks only when one step found nothing."""
        second = {self._stem(w) for w in self._neighbours(self._first(word))}
        return frozenset(second - self.related(word) - {self._stem(word)})

    def _antonym_stems(self, word: str) -> frozenset[str]:
        return frozenset(self._stem(a) for lemma in self.lemmas(word) for a in self._antonyms.get(lemma, ()))


_lock = threading.Lock()
_loaded: Lexicon | None = None


def get_lexicon() -> Lexicon:
    """The process-wide lexicon; the warm-up thread and a first request never both load it."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = Lexicon.load()
    return _loaded
