"""Sensitive-domain scores in [0, 1]: medical, financial, legal, HR, source code/credentials.

Two kinds of evidence, averaged, so neither alone decides:
- a lexicon (`data/domain_lexicons.json`): distinct strong terms count 1, weak terms 0.35, through a
  saturating curve. One word mentioned once scores low (a strong term alone gives 0.39 before
  averaging), three different domain terms score high;
- sentence-embedding similarity between the text's chunks and authored domain exemplars
  (`data/domain_exemplars.json`), counted only above the similarity to ordinary-work exemplars and
  rescaled so that an unrelated text lands at 0.

Source code gets a third, structural signal (lines that parse as code), because code is recognized
by its shape more than by its words.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from gateway.risk.config import DOMAINS, Domain
from gateway.risk.embeddings import Embedder
from gateway.risk.prepare import Prepared

DATA = Path(__file__).resolve().parent / "data"

STRONG_WEIGHT, WEAK_WEIGHT, LEX_SCALE = 1.0, 0.35, 2.0
# Cosine similarities from MiniLM: unrelated sentences sit around 0.0-0.25, same-topic ones 0.45-0.8.
SIM_FLOOR, SIM_SPAN = 0.25, 0.35

_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import |return\b|if .*:\s*$|for .* in .*:\s*$|while .*:\s*$|#include|"
    r"public |private |protected |func |fn |let |const |var "
    r"|package |using |@\w+|SELECT |INSERT |UPDATE |DELETE |"
    r"CREATE |\}|\{|//|/\*|# |[A-Z_][A-Z0-9_]{2,}\s*=)"
    r"|[;{}]\s*$|\)\s*:\s*$|=>|->|::|\b\w+\(.*\)\s*$",
)
_SQL = re.compile(r"\bselect\b[^;]{1,200}\bfrom\b\s+\w+", re.IGNORECASE)


def _term_regex(term: str) -> str:
    star = term.endswith("*")
    body = re.escape(term.rstrip("*")).replace(r"\ ", r"\s+")
    left = r"(?<!\w)" if re.match(r"\w", term) else ""
    right = r"\w*" if star else (r"(?!\w)" if re.search(r"\w$", term) else "")
    return left + body + right


@dataclass(frozen=True)
class _Term:
    probe: str  # a literal that must occur for the term to match: a C-speed `in` spares most regex runs
    rx: re.Pattern[str]

    def found(self, norm: str) -> bool:
        return self.probe in norm and self.rx.search(norm) is not None


def _term(t: str) -> _Term:
    return _Term(t.rstrip("*").split(" ")[0], re.compile(_term_regex(t)))


@dataclass(frozen=True)
class _Lexicon:
    strong: list[_Term]
    weak: list[_Term]

    def score(self, norm: str) -> float:
        s = sum(1 for t in self.strong if t.found(norm))
        w = sum(1 for t in self.weak if t.found(norm))
        return 1.0 - math.exp(-(STRONG_WEIGHT * s + WEAK_WEIGHT * w) / LEX_SCALE)


@cache
def _lexicons() -> dict[str, _Lexicon]:
    doc = json.loads((DATA / "domain_lexicons.json").read_text())
    return {
        d: _Lexicon([_term(t) for t in doc[d]["strong"]], [_term(t) for t in doc[d]["weak"]]) for d in DOMAINS
    }


def code_shape(raw: str) -> float:
    """0..1 from how many lines look like code (fenced blocks and SQL count too)."""
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    hits = sum(1 for ln in lines if _CODE_LINE.search(ln))
    hits += 2 * raw.count("```") // 2 + (2 if _SQL.search(raw) else 0)
    return hits / (hits + 3.0) if hits >= 2 else 0.0


class DomainScorer:
    """Build once per process: embeds the exemplars on construction (when given an embedder)."""

    def __init__(self, embedder: Embedder | None) -> None:
        self.lexicons = _lexicons()
        self.exemplars: dict[str, np.ndarray] = {}
        self.general: np.ndarray | None = None
        if embedder is not None:
            doc = json.loads((DATA / "domain_exemplars.json").read_text())
            self.exemplars = {d: embedder.encode(doc[d]) for d in DOMAINS}
            self.general = embedder.encode(doc["general"])

    def _similarity(self, vectors: np.ndarray, domain: str) -> float:
        if self.general is None or not len(vectors):
            return 0.0
        dom = (vectors @ self.exemplars[domain].T).max(axis=1)
        gen = (vectors @ self.general.T).max(axis=1)
        # A chunk counts only by how far it is closer to the domain than to ordinary work.
        best = float(np.max(np.minimum(dom, dom - gen + SIM_FLOOR)))
        return min(1.0, max(0.0, (best - SIM_FLOOR) / SIM_SPAN))

    def score(self, texts: list[Prepared]) -> dict[Domain, float]:
        """Scores over the whole request: lexicon over all texts together, similarity over all chunks."""
        norm = "\n".join(p.norm for p in texts)
        vectors = np.concatenate([p.vectors for p in texts]) if texts else np.zeros((0, 384), np.float32)
        out: dict[Domain, float] = {}
        for d in DOMAINS:
            lex = self.lexicons[d].score(norm)
            # Without embeddings (a policy may turn them off) the lexicon decides alone.
            s = lex if self.general is None else 0.5 * lex + 0.5 * self._similarity(vectors, d)
            if d == "code":
                s = max(s, code_shape("\n".join(p.raw for p in texts)))
            out[d] = round(s, 4)
        return out
