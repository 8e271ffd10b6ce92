"""Sensitive-domain scores in [0, 1]: medical, financial, legal, HR, source code/credentials.

- Medical, financial, legal and HR: a learned head (`DomainHead`, `data/domain_head.npz`) over the
  sentence embedder's windows, fitted on public domain-labelled sets (`scripts/train_domains.py`).
  Measured leave-one-source-out (`bench/domain_eval.py`), it ranks each domain's texts above general
  text better than the authored lexicon-and-exemplar mix it replaced (AUROC 0.94-0.97 against
  0.87-0.94), and the lexicon added nothing to it as a feature, so it decides alone.
- Without embeddings (a policy may turn them off) each domain falls back to its lexicon
  (`data/domain_lexicons.json`): distinct strong terms count 1, weak terms 0.35, through a
  saturating curve, so one word mentioned once scores low and three different domain terms high.
- Source code, which no public set labels for us, keeps the authored evidence: its lexicon averaged
  with similarity to code exemplars (`data/domain_exemplars.json`, counted only above the similarity
  to ordinary-work exemplars), and a structural signal (lines that parse as code), because code is
  recognized by its shape more than by its words.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from gateway.risk import headfile
from gateway.risk.config import DOMAINS, Domain
from gateway.risk.embeddings import DIM, Embedder
from gateway.risk.prepare import Prepared

DATA = Path(__file__).resolve().parent / "data"

HEAD_DOMAINS: tuple[Domain, ...] = ("medical", "financial", "legal", "hr")
HEAD_PATH = DATA / "domain_head.npz"
REBUILD = "scripts/train_domains.py (training/domains/)"
# The head's offsets put the policy's default threshold (0.4) at its chosen false-positive rate.
THRESHOLD_LOGIT = math.log(0.4 / 0.6)

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


@dataclass(frozen=True)
class DomainHead:
    """One logistic regression per domain in HEAD_DOMAINS over sentence-embedding windows, fitted on
    public domain-labelled sets (training/domains/fit.py, `scripts/train_domains.py`); a request
    scores its best window."""

    weight: np.ndarray  # (len(HEAD_DOMAINS), DIM)
    bias: np.ndarray  # (len(HEAD_DOMAINS),)
    meta: dict = field(default_factory=dict)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(len(HEAD_DOMAINS),) probabilities: each domain's best window; zeros without windows."""
        if not len(vectors):
            return np.zeros(len(self.bias), np.float32)
        z = (vectors @ self.weight.T + self.bias).max(axis=0)
        # a NaN (a broken vector) reads as the domain present: the request stays on internal backends
        return np.where(np.isnan(z), 1.0, 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))))

    def save(self, path: Path) -> None:
        headfile.save(path, self.meta, weight=self.weight.astype(np.float16), bias=self.bias.astype(np.float32))

    @staticmethod
    def load(path: Path = HEAD_PATH) -> DomainHead:
        z, meta = headfile.load(path, ("weight", "bias"), "domain model", REBUILD)
        head = DomainHead(z["weight"], z["bias"], meta)
        headfile.check_shape(head.weight.shape == (len(HEAD_DOMAINS), DIM) and head.bias.shape == (len(HEAD_DOMAINS),),
                             path, "domain model", REBUILD)
        return head


class DomainScorer:
    """Build once per process: loads the domain head and embeds the code exemplars on construction
    (when given an embedder)."""

    def __init__(self, embedder: Embedder | None, head: DomainHead | None = None) -> None:
        self.lexicons = _lexicons()
        self.head: DomainHead | None = None
        self.code: np.ndarray | None = None
        self.general: np.ndarray | None = None
        if embedder is not None:  # without embeddings the head has nothing to read: lexicons only
            self.head = head or DomainHead.load()
            doc = json.loads((DATA / "domain_exemplars.json").read_text())
            self.code, self.general = embedder.encode(doc["code"]), embedder.encode(doc["general"])

    def _code_similarity(self, vectors: np.ndarray) -> float:
        if self.code is None or self.general is None or not len(vectors):
            return 0.0
        dom = (vectors @ self.code.T).max(axis=1)
        gen = (vectors @ self.general.T).max(axis=1)
        # A chunk counts only by how far it is closer to code than to ordinary work.
        best = float(np.max(np.minimum(dom, dom - gen + SIM_FLOOR)))
        return min(1.0, max(0.0, (best - SIM_FLOOR) / SIM_SPAN))

    def score(self, texts: list[Prepared]) -> dict[Domain, float]:
        """Scores over the whole request: the head over every window of every text; the lexicons over
        all texts together."""
        norm = "\n".join(p.norm for p in texts)
        vectors = np.concatenate([p.vectors for p in texts]) if texts else np.zeros((0, DIM), np.float32)
        out: dict[Domain, float] = {}
        if self.head is not None:
            out |= dict(zip(HEAD_DOMAINS, (round(float(x), 4) for x in self.head.scores(vectors)), strict=True))
        for d in DOMAINS:
            if d in out:
                continue
            # Without embeddings (a policy may turn them off) the lexicon decides alone.
            lex = self.lexicons[d].score(norm)
            code = d == "code" and self.code is not None
            out[d] = round(0.5 * lex + 0.5 * self._code_similarity(vectors) if code else lex, 4)
        out["code"] = max(out["code"], round(code_shape("\n".join(p.raw for p in texts)), 4))
        return out
