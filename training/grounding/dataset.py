"""The grounding verifier's data: records from every source, their claims, and (claim, chunk) pairs.

Sources: every `build/<source>.jsonl` the converters in `sources/` wrote (see the README), plus the
HaluEval QA part of `../shared/evals/grounding-dev.jsonl` (`halueval-qa`; the SummEdits part comes
through `sources/summedits.py`). One source is one left-out group.

A record's claims are `answer_claims` of its answer, as the gateway cuts them. A claim's label:
- where the source marks unsupported spans, unsupported iff the claim overlaps one;
- else, in a supported answer, supported; in a hallucinated answer of one claim, unsupported;
- else (a hallucinated answer of several claims, unlocalised) unknown: not a training pair, but the
  answer is still scored in evaluation.
A training pair is (claim + question tail, the claim's best chunk); evaluation scores every claim
against its TOP_CHUNKS chunks exactly as `Verifier.claim_scores` does.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from gateway.hallucination.claims import answer_claims
from gateway.hallucination.overlap import content_words, overlap
from gateway.hallucination.verifier import ContextChunks, Pair, first_segment, pair_ids

ROOT = Path(__file__).resolve().parents[2]
# Scored, never trained on: sources whose terms are too unclear to ship weights derived from them.
EVAL_ONLY = {
    "dlg_citod": "CI-ToD: an MIT badge in its README but no licence file; the KVRET dialogues under it state none",
}
BUILD = ROOT / "training" / "grounding" / "build"
DEV = ROOT.parent / "shared" / "evals" / "grounding-dev.jsonl"


@dataclass
class Record:
    source: str
    id: str
    family: str
    supported: bool
    context: str
    question: str
    answer: str
    spans: list[tuple[int, int]] | None
    doc: str = ""  # hash of the context: records that share one are not independent

    def __post_init__(self) -> None:
        self.doc = hashlib.sha256(self.context.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def overlap(self) -> float:
        return overlap(self.context, self.answer)


@dataclass
class Scored:
    """A record's claims as pairs: `train` (pair, label) for claims with a known label, `eval` the
    pairs the gateway would score, with the claim each belongs to."""

    record: Record
    n_claims: int
    train: list[tuple[Pair, int]] = field(default_factory=list)
    synthetic: list[Pair] = field(default_factory=list)  # perturbed supported claims: unsupported
    eval: list[Pair] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)


def load_sources(build: Path = BUILD, dev: Path = DEV) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for path in sorted(build.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            spans = [tuple(s) for s in r["spans"]] if r.get("spans") is not None else None
            out[r["source"]].append(Record(r["source"], r["id"], r["family"], r["label"] == "supported",
                                           r["context"], r.get("question") or "", r["answer"], spans))
    if dev.exists():
        for line in dev.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["id"].startswith("halueval"):
                out["halueval-qa"].append(Record("halueval-qa", r["id"], "qa", r["label"] == "supported",
                                                 r["context"], r.get("question") or "", r["answer"], None))
    return dict(sorted(out.items()))


def sample(records: list[Record], n: int, seed: int) -> list[Record]:
    """Up to n records, as balanced between the labels as the source allows, by a fixed seed."""
    pos = [r for r in records if r.supported]
    neg = [r for r in records if not r.supported]
    rng = random.Random(seed)
    rng.shuffle(pos)
    rng.shuffle(neg)
    half = n // 2
    take_pos = min(len(pos), max(half, n - len(neg)))
    take_neg = min(len(neg), n - take_pos)
    return sorted(pos[:take_pos] + neg[:take_neg], key=lambda r: r.id)


def claim_labels(rec: Record, claims) -> list[int | None]:
    """1 supported, 0 unsupported, None unknown (see the module docstring)."""
    if rec.spans is not None:
        return [0 if any(a < c.end and c.start < b for a, b in rec.spans) else 1 for c in claims]
    if rec.supported:
        return [1] * len(claims)
    if len(claims) == 1:
        return [0]
    return [None] * len(claims)


def pairs_for(tok, rec: Record) -> Scored:
    claims = answer_claims(rec.answer)
    out = Scored(rec, len(claims))
    if not claims:
        return out
    chunks = ContextChunks(tok, [rec.context])
    q_ids = tok.encode(rec.question, add_special_tokens=False).ids if rec.question else []
    encoded = tok.encode_batch([c.text for c in claims], add_special_tokens=False)
    rng = random.Random(rec.id)
    for i, (claim, enc, label) in enumerate(zip(claims, encoded, claim_labels(rec, claims), strict=True)):
        seg = first_segment(enc.ids, q_ids)
        best = chunks.best(set(content_words(claim.text)))
        if label is not None and best:
            out.train.append((pair_ids(seg, best[0].ids, chunks.pieces), label))
        changed = perturb(claim.text, rec.context, rng) if label == 1 and best else None
        if changed:
            ids = tok.encode(changed, add_special_tokens=False).ids
            out.synthetic.append(pair_ids(first_segment(ids, q_ids), best[0].ids, chunks.pieces))
        for c in best:
            out.eval.append(pair_ids(seg, c.ids, chunks.pieces))
            out.owner.append(i)
    return out


# --------------------------------------------------------------------------- synthetic negatives
# A supported claim with one fact changed is an unsupported claim with the same chunk (FactCC-style):
# it teaches every source the edits that make a hallucination (a number, a name, a negation) on
# that source's own text. Data generation, not a detection rule: the verifier never sees these rules.

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"(?<=[\w,;:] )[A-Z][a-z]+")
_AUX = re.compile(r"\b(is|are|was|were|has|have|had|will|can|could|would|should|does|do|did)\b")
_NEG = re.compile(r"\b(not|never) ")


def perturb(claim: str, context: str, rng: random.Random) -> str | None:
    """The claim with one fact changed (a number; a name for another name of the context; a
    negation added or dropped), or None when it has nothing to change."""
    edits = []
    numbers = list(_NUMBER.finditer(claim))
    if numbers:
        edits.append("number")
    names = list(_NAME.finditer(claim))
    others = sorted({m.group() for m in _NAME.finditer(context)} - {m.group() for m in names})
    if names and others:
        edits.append("name")
    if _NEG.search(claim) or _AUX.search(claim):
        edits.append("negation")
    if not edits:
        return None
    edit = rng.choice(edits)
    if edit == "number":
        m = rng.choice(numbers)
        digits = m.group()
        pos = max(i for i, ch in enumerate(digits) if ch.isdigit())
        new_digit = rng.choice([d for d in "0123456789" if d != digits[pos]])
        changed = digits[:pos] + new_digit + digits[pos + 1 :]
        if len(digits) > 1 and rng.random() < 0.5:
            changed = digits[:1] + digits  # an order of magnitude
        return claim[: m.start()] + changed + claim[m.end() :]
    if edit == "name":
        m = rng.choice(names)
        return claim[: m.start()] + rng.choice(others) + claim[m.end() :]
    neg = _NEG.search(claim)
    if neg:
        return claim[: neg.start()] + claim[neg.end() :]
    aux = _AUX.search(claim)
    return claim[: aux.end()] + " not" + claim[aux.end() :]
