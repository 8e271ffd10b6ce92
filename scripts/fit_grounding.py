"""Fit the grounding check's model (`gateway/hallucination/data/grounding_model.json`).

Data: `grounding-dev.jsonl` (3,000 records: 1,000 HaluEval QA, 2,000 SummEdits summaries), by default
`../shared/evals/grounding-dev.jsonl` next to the repository; `--data` to point elsewhere.

Protocol (since model grounding-lr-10; kept here, and copied into the model file's `meta`):
- Every record belongs to one of 10 folds by its document: fold = the third byte of the SHA-256 of
  its UTF-8 `context`, mod 10. Both answers of a HaluEval question and every SummEdits summary of
  one document share a fold, so no document is ever on both sides of a fit.
- The regularization strength C and the decision threshold are chosen on the out-of-fold scores:
  each record scored by a model fitted on the nine folds without its document. Those scores are
  the figures to quote (`bench/grounding_eval.py` prints them with bootstrap intervals).
- The shipped model is then fitted on all 3,000 records with that C. Up to lr-9 it was fitted on
  one half only, and the other half was scored once; grouped cross-validation over the whole file
  gives twice the training documents to the shipped model (the SummEdits part has ~120 documents)
  and an estimate from all of them rather than from ~56.
- The halves of the earlier protocol are still reported, because they say how far to trust the
  figure. The DESIGN half (first byte of the SHA-256 even) is the one whose records and
  cross-validation figures were read while the features were designed, so out-of-fold scores there
  read high. The UNREAD half (odd) was never read record by record. Its figure was printed with
  each refit, and the fitting script's history below says when that steered a choice. It is the
  least biased figure there is. The earlier protocol's own figure (fit on the design half, score
  the unread half) is printed too, for comparison with earlier notes.
- History of choices, for discounting the figures. While the WordNet paraphrase features (lr-3) were
  tried, the unread half's figure of each variant was printed too; the variant kept is the one the
  design half's CV preferred (SummEdits 0.743 -> 0.751). lr-4 (four aligned sentences, one antonym
  feature) was chosen on design-half CV alone (k = 1..6: 0.746, 0.751, 0.757, 0.761, 0.759, 0.755).
  lr-5, -6 and -7 changed only how notation is read (dates, times, currencies, spelled-out numbers,
  acronyms, compounds; `gateway/hallucination/notation.py`), decided on hand-made cases. lr-8 holds
  the novel-word count to lowering the score (design-half CV 0.765 -> 0.767) and reads "May 3" as a
  month. lr-9 enters sizes as log(1 + x), decided on a case (a twelve-sentence verbatim answer
  scored 0.19). lr-10 (this protocol): British spellings, spoken decimals ("twelve dot fifty"),
  "$.50", "50 cents", "FY21" and rounded numbers read as their context's, decided on hand-made
  cases; a negation of what the aligned sentences state (`neg_contradicts`), chosen on design-half
  CV (5 folds: 0.758 -> 0.765); the context's length dropped (fitted on the whole file, it scored a
  verbatim copy of a one-sentence context 0.50 against 0.47, and out-of-fold AUROC rose 0.750 ->
  0.753); features clipped to the fitted range; unsupported numbers and names made decisive
  (`grounding_model.DECISIVE`: a short answer with an invented number passed in a long context); a claim
  copying its aligned sentences but for one unrelated word (`lone_swap`, out-of-fold 0.7519 ->
  0.7556, decided on "resigned" for "spoke"); irregular verbs stemmed to their base. Tried and
  dropped, each with its figures in `bench/RESULTS.md`: new words tagged as verbs by spaCy
  (design-half CV +0.012, but it raises the score of a swapped verb, "resigned" for "spoke", and the
  gain was gone on the unread half), new words related to the aligned sentences, WordNet siblings
  ("pink" for "yellow") and hypernyms, word swaps against the best-aligned sentence, MiniLM token
  alignment, gradient-boosted trees. The unread half's figure was printed throughout this work, and
  the later decisions (context length, decisive evidence, `lone_swap`, dropping the verb feature)
  were taken with it in view, so it is not untouched either. lr-11: antonym flips anchored in
  their aligned sentence (`flip_anchored`: a neighbour of the flipped word stands next to its
  antonym there) and swaps between matching neighbours (`swap_word`, `swap_number`), each chosen on
  design-half CV (SummEdits 0.7648 -> 0.7702 -> 0.7754, then 0.7743 with the number swap judged
  slot by slot so that "in 2019 in Ohio" for "in 2020 in Ohio" counts in a short context too);
  tried and dropped on the same CV: prefix flips judged against the aligned sentences (0.7679 alone,
  +0.0001 inside the anchoring), WordNet antonyms without the "-er" detachment ("offer" is not
  "off"; 0.7702 either way, and it lost "higher"/"lower"). The unread half and the holdout of
  `bench/grounding_holdout.py` were scored once, after those choices. lr-12 fixes three misreadings
  found among the design half's lowest-scoring faithful summaries, each decided on its case: a
  sentence ending in "El Al." was not split, so the next sentence's first word ("Previously") read as
  an invented name, which is decisive; "Chinese" where the context says "China" was an invented name
  (now a capitalized word whose WordNet relative in the context shares its first four letters is
  not); "recovered ... credit losses" was an antonym flip, because "losses" stems like "lose" (the
  verb-only pairs with "lose" are gone). An answer's "fourth quarter" / "first half" now reads as a
  number, as "Q4" / "H1" did. Design-half out-of-fold SummEdits (C = 0.3) 0.7781 -> 0.7820. Then,
  each chosen on the design half's figure: closed classes whose members exclude each other (colours,
  time units, weekdays, months, seasons, directions, kin; `_EXCLUSIVE_CLASSES`) join the antonym
  table, 0.7865 (with gold/silver/bronze 0.7778: plan tiers; left out); a number counts as restated
  only where an aligned sentence has it between both of its neighbours, not one, 0.7877; an antonym
  anchored next to the claim word's neighbours counts though the aligned sentences hold the word
  elsewhere, unless they also hold it in such a place, 0.7905, and with "such a place" read as
  sharing as many of its neighbours as the antonym does, 0.7904 (kept: "costs rose in May" against
  "revenue rose in May; costs fell in May" is a flip); WordNet antonyms that are function words
  dropped ("offer" read as the comparative of "off", antonym "on"), 0.7913; a class member weighed
  against the others only where the aligned sentences lack it, and frequencies ("monthly" stems to
  "month") no longer a class, 0.7934 (decided on "The office opens on Saturday mornings." against
  "open Monday to Friday ... On Saturdays it opens in the morning", and "An annual subscription
  costs $100." against "$10 per month or $100 per year", both flagged); a class member absent from
  the context where the aligned sentences name another counts as an invented value
  (`class_novel`, decisive like a number: "three to five weeks" for "three to five working days"
  scored 0.49, "within 24 minutes" for "within 24 hours" 0.52, both passing), with the context's
  durations read in other units so that "a day" for "24 hours" still passes (`notation.py`),
  0.7933 (decided on those cases). The whole file's figure was printed
  with each run (0.7593 -> 0.769; it contains the design half). The unread half and the holdout
  were printed five times: with only the misreadings fixed (0.733, 0.756), after the flips (0.738,
  0.761), after the function-word antonyms (0.740, 0.758), after the class members (0.739, 0.763)
  and at the end (0.740, 0.764); every choice above was made on the design half's figure (and the
  cases named) before the next print.

Model: L2-regularized logistic regression over `ANSWER_FEATURES` standardized with the fitted
records' mean and standard deviation (each feature clipped to their range at run time), with the
sign of each weight fixed by prior knowledge (`SIGNS`: evidence of unsupported content can only
lower the score); fitted with scipy's L-BFGS-B, applied at run time with numpy alone. Each number
or name the context lacks (and, since lr-12, each closed-class value) then halves the probability
(`grounding_model.DECISIVE`), in the out-of-fold scores as at run time. The threshold maximizes
out-of-fold accuracy.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python scripts/fit_grounding.py                 # fit + write
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python scripts/fit_grounding.py --dry-run       # figures only
    ... --cache /tmp/grounding-emb.npz   # keep sentence embeddings between runs (no text is stored)

The model file is the same byte for byte whatever PYTHONHASHSEED is (checked with two seeds).
Bump `GroundingCheck.version` when the features change; the model's own `version` is set here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.hallucination.claim_features import CLAIM_FEATURES  # noqa: E402
from gateway.hallucination.grounding import GroundingCheck  # noqa: E402
from gateway.hallucination.grounding_model import (  # noqa: E402
    ANSWER_FEATURES,
    MODEL_PATH,
    GroundingModel,
    answer_features,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared/evals/grounding-dev.jsonl"
MODEL_VERSION = "grounding-lr-12"
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
FOLDS = 10
SPLIT_RULE = (
    "fold = sha256(context.utf8).digest()[2] % 10; out-of-fold scores choose C and the threshold; "
    "the shipped model is fitted on every fold. Halves reported apart: unread if digest()[0] is odd, "
    "design otherwise (the design half was read while the features were designed)"
)


# ---------------------------------------------------------------------------------------------------
# Data


@dataclass
class Record:
    id: str
    context: str
    question: str
    answer: str
    label: int  # 1 = supported, 0 = hallucinated
    source: str

    @property
    def family(self) -> str:
        return "HaluEval" if self.source.startswith("halueval") else "SummEdits"

    @property
    def subsource(self) -> str:
        if self.family == "HaluEval":
            return "halueval"
        return Path(self.source).stem.removeprefix("summedits_")

    @property
    def context_digest(self) -> bytes:
        return hashlib.sha256(self.context.encode("utf-8")).digest()

    @property
    def half(self) -> str:
        """"unread" or "design": see the protocol above."""
        return "unread" if self.context_digest[0] % 2 else "design"

    @property
    def fold(self) -> int:
        return self.context_digest[2] % FOLDS


def load_records(path: Path) -> list[Record]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row["label"] not in ("supported", "hallucinated"):
            raise ValueError(f"{path}:{n}: unknown label {row['label']!r}")
        out.append(
            Record(
                id=row["id"],
                context=row["context"],
                question=row.get("question") or "",
                answer=row["answer"],
                label=int(row["label"] == "supported"),
                source=row.get("source", ""),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------------
# Embeddings cached on disk between runs (keyed by a digest of the text; the text itself is not kept)


class DiskCachedEmbedder:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: dict[bytes, np.ndarray] = {}
        self.dirty = False
        self._inner = None
        if path and path.is_file():
            data = np.load(path)
            for key, row in zip(data["keys"], data["rows"], strict=True):
                self.rows[bytes(key)] = row

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self.rows]
        if todo:
            if self._inner is None:
                from gateway.risk.embeddings import get_embedder

                self._inner = get_embedder()
            fresh = self._inner.encode([texts[i] for i in todo])
            for i, row in zip(todo, fresh, strict=True):
                self.rows[keys[i]] = row
            self.dirty = True
        return np.array([self.rows[k] for k in keys], dtype=np.float32).reshape(len(texts), -1)

    def save(self) -> None:
        if self.path and self.dirty:
            keys = np.array([np.frombuffer(k, dtype=np.uint8) for k in self.rows])
            np.savez(self.path, keys=keys, rows=np.array(list(self.rows.values()), dtype=np.float32))
            self.dirty = False


# ---------------------------------------------------------------------------------------------------
# Metrics and the fit


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN when one class is missing."""
    y = np.asarray(y, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# Prior knowledge of each feature's direction, imposed on the fit: evidence of unsupported content may
# only lower the score, similarity may only raise it; the rest (sizes) are free. Without this, the fit
# learns the data sets' quirks, e.g. that HaluEval's right answers are too short to look similar to
# their context sentence, and would score a verbatim copy of the context as doubtful. The count of
# novel words was left free until lr-8 and came out positive (SummEdits' faithful summaries are
# rewrites full of new words), so a short answer copied word for word from the context scored below
# threshold; the WordNet counts say which new words are paraphrases, and with novel words held to
# lowering the score, design-half CV rose (SummEdits 0.765 -> 0.767).
SIGNS = {
    "n_claims_log": 0, "n_content_log": 0, "num_log": 0, "emb_min": +1,
    "novel_syn_log": +1, "novel_syn2_log": +1,
}  # every other feature: -1


def feature_signs() -> np.ndarray:
    return np.array([SIGNS.get(name, -1) for name, _, _ in ANSWER_FEATURES], dtype=np.int8)


def fit_logistic(z: np.ndarray, y: np.ndarray, c: float, signs: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """L2 logistic regression, penalty |w|^2 / (2c) (sklearn's C), intercept unpenalized, optional sign
    constraints per weight (+1: w >= 0, -1: w <= 0, 0: free); L-BFGS-B."""
    from scipy.optimize import minimize

    n, d = z.shape
    a = np.hstack([z, np.ones((n, 1))])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        t = a @ w
        # log(1 + e^t) - y t, computed stably
        value = np.sum(np.logaddexp(0.0, t) - y * t) + np.dot(w[:-1], w[:-1]) / (2.0 * c)
        p = 1.0 / (1.0 + np.exp(-np.clip(t, -40, 40)))
        grad = a.T @ (p - y)
        grad[:-1] += w[:-1] / c
        return float(value), grad

    bounds = [(None, None)] * (d + 1)
    if signs is not None:
        bounds = [(0.0, None) if s > 0 else (None, 0.0) if s < 0 else (None, None) for s in signs] + [(None, None)]
    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
    return res.x[:-1], float(res.x[-1])


def make_model(x: np.ndarray, y: np.ndarray, c: float, emb_default: float, threshold: float = 0.5) -> GroundingModel:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    coef, intercept = fit_logistic((x - mean) / scale, y.astype(np.float64), c, feature_signs())
    return GroundingModel(
        version=MODEL_VERSION,
        features=tuple(name for name, _, _ in ANSWER_FEATURES),
        mean=mean,
        scale=scale,
        coef=coef,
        intercept=intercept,
        threshold=threshold,
        emb_default=emb_default,
        lower=x.min(axis=0),
        upper=x.max(axis=0),
    )


def best_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The cut maximizing accuracy (midpoint between neighbouring scores); returns (threshold, acc)."""
    cuts = np.unique(p)
    candidates = np.concatenate([[0.0], (cuts[:-1] + cuts[1:]) / 2.0, [1.0]])
    accs = [float(np.mean((p >= t) == (y == 1))) for t in candidates]
    i = int(np.argmax(accs))
    return float(candidates[i]), accs[i]


@dataclass
class Featurized:
    records: list[Record]
    claim_values: list[np.ndarray]  # per record: claims x CLAIM_FEATURES (emb NaN where not computed)

    def matrix(self, emb_default: float, idx: Sequence[int] | None = None) -> np.ndarray:
        idx = range(len(self.records)) if idx is None else idx
        return np.array([answer_features(self.claim_values[i], emb_default) for i in idx])


def featurize(records: list[Record], embedder, use_embeddings: bool = True, log=print) -> Featurized:
    placeholder = GroundingModel(
        version="placeholder",
        features=tuple(name for name, _, _ in ANSWER_FEATURES),
        mean=np.zeros(len(ANSWER_FEATURES)),
        scale=np.ones(len(ANSWER_FEATURES)),
        coef=np.zeros(len(ANSWER_FEATURES)),
        intercept=0.0,
        threshold=0.5,
        emb_default=0.5,
    )
    check = GroundingCheck(model=placeholder, embedder=embedder, use_embeddings=use_embeddings)
    values = []
    t0 = time.perf_counter()
    for n, r in enumerate(records, 1):
        analysis = check.analyze(r.context, r.answer, r.question)
        values.append(np.array([ev.values for ev in analysis.claims]).reshape(-1, len(CLAIM_FEATURES)))
        if n % 500 == 0:
            log(f"  featurized {n}/{len(records)} ({time.perf_counter() - t0:.0f} s)")
    return Featurized(records, values)


def emb_mean(feats: Featurized, idx: Sequence[int]) -> float:
    col = CLAIM_FEATURES.index("emb")
    vals = [v for i in idx for v in feats.claim_values[i][:, col] if not np.isnan(v)]
    return float(np.mean(vals)) if vals else 0.5


def cross_validate(feats: Featurized, idx: Sequence[int], c: float) -> np.ndarray:
    """Out-of-fold probabilities for the records `idx` (aligned with it), by their document folds."""
    recs = feats.records
    idx = list(idx)
    out = np.zeros(len(idx))
    folds = np.array([recs[i].fold for i in idx])
    y = np.array([recs[i].label for i in idx])
    for k in np.unique(folds):
        fit_idx = [idx[j] for j in np.flatnonzero(folds != k)]
        default = emb_mean(feats, fit_idx)
        model = make_model(feats.matrix(default, fit_idx), y[folds != k], c, default)
        out[folds == k] = model.predict(feats.matrix(default, [idx[j] for j in np.flatnonzero(folds == k)]))
    return out


def family_aurocs(records: list[Record], idx: Sequence[int], p: np.ndarray) -> dict[str, float]:
    y = np.array([records[i].label for i in idx])
    out = {}
    for fam in ("HaluEval", "SummEdits"):
        sel = np.array([records[i].family == fam for i in idx])
        out[fam] = round(auroc(y[sel], p[sel]), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    ap.add_argument("--cache", type=Path, default=None, help="npz file keeping embeddings between runs")
    ap.add_argument("--dry-run", action="store_true", help="print the figures, do not write the model")
    args = ap.parse_args(argv)

    records = load_records(args.data)
    everything = list(range(len(records)))
    halves = {h: [i for i, r in enumerate(records) if r.half == h] for h in ("unread", "design")}
    print(f"{args.data.name}: {len(records)} records in {FOLDS} folds by document; "
          f"halves: unread {len(halves['unread'])}, design {len(halves['design'])}")
    embedder = DiskCachedEmbedder(args.cache)
    try:
        feats = featurize(records, embedder)
    finally:
        embedder.save()

    y = np.array([r.label for r in records])
    scores = {}
    for c in C_GRID:
        p = cross_validate(feats, everything, c)
        fam = family_aurocs(records, everything, p)
        scores[c] = (np.mean(list(fam.values())), fam, p)
        print(f"  C={c:<5} out-of-fold AUROC {fam}")
    c_best = max(C_GRID, key=lambda c: scores[c][0])
    oof = scores[c_best][2]
    threshold, cv_acc = best_threshold(y, oof)
    print(f"chosen C={c_best}; threshold {threshold:.4f} (out-of-fold accuracy {cv_acc:.3f})")
    by_half = {}
    for h, idx in halves.items():
        by_half[h] = family_aurocs(records, idx, oof[idx])
        print(f"  out-of-fold AUROC, {h} half: {by_half[h]}")

    # the earlier protocol, for comparison with earlier notes: fit on the design half, score the unread
    design, unread = halves["design"], halves["unread"]
    d_default = emb_mean(feats, design)
    d_model = make_model(feats.matrix(d_default, design), y[design], c_best, d_default)
    earlier = family_aurocs(records, unread, d_model.predict(feats.matrix(d_default, unread)))
    print(f"  earlier protocol (fit on the design half, score the unread half): {earlier}")

    default = emb_mean(feats, everything)
    model = make_model(feats.matrix(default), y, c_best, default, threshold)
    for name, w in sorted(zip(model.features, model.coef, strict=True), key=lambda t: t[1]):
        print(f"  {name:24s} {w:+.3f}")

    meta = {
        "data": args.data.name,
        "records": len(records),
        "protocol": SPLIT_RULE,
        "C": c_best,
        "cv_auroc": scores[c_best][1],
        "cv_auroc_by_half": by_half,
        "cv_accuracy": round(cv_acc, 4),
        "earlier_protocol_auroc": earlier,
    }
    final = GroundingModel(**{**model.__dict__, "meta": meta})
    if args.dry_run:
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(final.to_dict(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
