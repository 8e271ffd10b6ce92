"""AUROC of the grounding check on `grounding-dev.jsonl`, next to trivial baselines, and its latency.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/grounding_eval.py [--data FILE] [--cache FILE.npz]
                                                                           [--latency-runs N] [--no-latency]

Protocol (printed with the figures; the fitting script's docstring has the whole of it):
- Scores: out-of-fold. The records fall in 10 folds by document (`scripts/fit_grounding.py`); each
  record is scored by a model fitted, with the shipped model's C, on the nine folds that don't hold
  its document, from the features `GroundingCheck.analyze` computes exactly as the gateway does.
  The shipped model itself was fitted on all the records, so scoring them with it would be in-sample.
- Tables: all records, then the UNREAD half alone (records never read while the features were
  designed: the least biased figure), with the DESIGN half's line under it (it reads high).
- Baselines (same records): answer length (shorter = supported), content-word overlap (share of the
  answer's content words found in the context), plain embedding similarity (per claim, the best
  cosine to any context sentence; the answer takes its worst claim).
- Intervals: 95% percentile bootstrap over documents (contexts), 2,000 resamples: records that share
  a document are not independent.
- Latency: `GroundingCheck.score` on 1,000-character answers against 4,000-character contexts built
  from the SummEdits documents and summaries, once with the shipped configuration and once forcing
  the embedding path with the embedder's cache cleared before every call (uncached embeddings).
  The first call (model load) is excluded. Timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from fit_grounding import (  # noqa: E402
    DEFAULT_DATA,
    DiskCachedEmbedder,
    Record,
    auroc,
    cross_validate,
    family_aurocs,
    featurize,
    load_records,
)

from gateway.hallucination.claims import split_claims  # noqa: E402
from gateway.hallucination.context_index import ContextIndex  # noqa: E402
from gateway.hallucination.grounding import GroundingCheck  # noqa: E402
from gateway.hallucination.lexicon import get_lexicon  # noqa: E402
from gateway.hallucination.tokens import tokenize  # noqa: E402

SEED = 20240611
SUBSOURCES = ("ectsum", "news", "qmsumm", "sales_call", "sales_email", "scitldr")


def bootstrap_ci(y: np.ndarray, s: np.ndarray, groups: list[str], n: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(SEED)
    by: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by[g].append(i)
    clusters = [np.array(v) for v in by.values()]
    stats = []
    for _ in range(n):
        pick = rng.integers(0, len(clusters), len(clusters))
        idx = np.concatenate([clusters[k] for k in pick])
        value = auroc(y[idx], s[idx])
        if not np.isnan(value):
            stats.append(value)
    if not stats:
        return float("nan"), float("nan")
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def overlap_baseline(r: Record, index: ContextIndex) -> float:
    content = {t.stem for t in tokenize(r.answer) if t.content}
    return len(content & index.stems) / len(content) if content else 1.0


def embedding_baseline(r: Record, index: ContextIndex, embedder: DiskCachedEmbedder) -> float:
    claims = [c.text for c in split_claims(r.answer)] or [r.answer]
    sents = [s.text for s in index.sentences] or [r.context]
    rows = embedder.encode(claims + sents)
    sims = rows[: len(claims)] @ rows[len(claims) :].T
    return float(sims.max(axis=1).min())


def baselines(records: list[Record], embedder: DiskCachedEmbedder) -> dict[str, np.ndarray]:
    """The trivial baselines' scores (higher = judged better supported), one array per baseline."""
    cols: dict[str, list[float]] = {"length": [], "overlap": [], "embedding": []}
    try:
        for r in records:
            index = ContextIndex(r.context)
            cols["length"].append(-float(len(r.answer)))
            cols["overlap"].append(overlap_baseline(r, index))
            cols["embedding"].append(embedding_baseline(r, index, embedder))
    finally:
        embedder.save()
    return {k: np.array(v) for k, v in cols.items()}


@dataclass
class SliceStats:
    n: int
    n_sup: int
    auroc: float
    ci: tuple[float, float]
    acc: float  # at the threshold
    balanced_acc: float  # the mean of the per-label accuracies
    baselines: dict[str, float]  # AUROC of each column but "check"


def slice_stats(recs: list[Record], idx: list[int], cols: dict[str, np.ndarray], threshold: float) -> SliceStats:
    """The figures of one slice of the records (`idx`); AUROC and its interval are NaN with one label."""
    ix = np.array(idx)
    y = np.array([recs[i].label for i in idx])
    check = cols["check"][ix]
    hit = (check >= threshold) == (y == 1)
    both = 0 < int(y.sum()) < len(idx)
    return SliceStats(
        n=len(idx),
        n_sup=int(y.sum()),
        auroc=auroc(y, check),
        ci=bootstrap_ci(y, check, [recs[i].context for i in idx]) if both else (float("nan"), float("nan")),
        acc=float(hit.mean()),
        balanced_acc=float((hit[y == 1].mean() + hit[y == 0].mean()) / 2) if both else float("nan"),
        baselines={k: auroc(y, v[ix]) for k, v in cols.items() if k != "check"},
    )


def table(title: str, recs: list[Record], cols: dict[str, np.ndarray], threshold: float) -> None:
    print(f"\n{title}")
    header = f"{'slice':<22}{'n (sup/hal)':>14}  {'check AUROC [95% CI]':<26}{'acc@thr':>8}"
    header += "".join(f"{name:>11}" for name in cols if name != "check")
    print(header)
    print("-" * len(header))
    slices: list[tuple[str, list[int]]] = [
        ("HaluEval", [i for i, r in enumerate(recs) if r.family == "HaluEval"]),
        ("SummEdits", [i for i, r in enumerate(recs) if r.family == "SummEdits"]),
    ]
    slices += [(f"  {sub}", [i for i, r in enumerate(recs) if r.subsource == sub]) for sub in SUBSOURCES]
    slices.append(("all", list(range(len(recs)))))
    for name, idx in slices:
        if not idx:
            continue
        st = slice_stats(recs, idx, cols, threshold)
        line = f"{name:<22}{f'{st.n} ({st.n_sup}/{st.n - st.n_sup})':>14}  "
        line += f"{f'{st.auroc:.3f} [{st.ci[0]:.3f}, {st.ci[1]:.3f}]':<26}{st.acc:>8.3f}"
        line += "".join(f"{v:>11.3f}" for v in st.baselines.values())
        print(line)


def latency_pairs(records: list[Record], n: int) -> list[tuple[str, str]]:
    by_doc: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.family == "SummEdits":
            by_doc[r.context].append(r)
    docs = sorted(by_doc, key=lambda c: by_doc[c][0].id)
    pairs = []
    for k, doc in enumerate(docs):
        context = doc
        j = 1
        while len(context) < 4000:  # pad with the next documents
            context += "\n" + docs[(k + j) % len(docs)]
            j += 1
        context = context[:4000]
        answer = ""
        for r in by_doc[doc] + by_doc[docs[(k + 1) % len(docs)]]:
            answer += (" " if answer else "") + r.answer
            if len(answer) >= 1000:
                break
        pairs.append((context, answer[:1000]))
        if len(pairs) == n:
            break
    return pairs


def time_calls(check: GroundingCheck, pairs: list[tuple[str, str]], runs: int, clear=None) -> np.ndarray:
    out = []
    for i in range(runs):
        context, answer = pairs[i % len(pairs)]
        if clear:
            clear()
        t0 = time.perf_counter()
        check.score(context, answer)
        out.append((time.perf_counter() - t0) * 1000.0)
    return np.array(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="grounding check: AUROC per source, baselines, latency")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=None, help="npz keeping baseline embeddings between runs")
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--no-latency", action="store_true")
    args = ap.parse_args(argv)

    records = load_records(args.data)
    check = GroundingCheck()
    c = float(check.model.meta.get("C", 0.1))
    print(f"{args.data.name}: {len(records)} records; model {check.model.version} ({check.version}); "
          f"threshold {check.threshold:.4f}; C {c}; embeddings {'on' if check.use_embeddings else 'off (weight 0)'}")
    embedder = DiskCachedEmbedder(args.cache)
    t0 = time.perf_counter()
    feats = featurize(records, embedder, log=lambda _: None)
    everything = list(range(len(records)))
    arrays = {"check": cross_validate(feats, everything, c), **baselines(records, embedder)}
    print(f"featurized and cross-validated in {time.perf_counter() - t0:.0f} s (baselines' embeddings included)")
    n_docs = len({r.context for r in records})
    table(
        f"OUT-OF-FOLD, ALL RECORDS ({len(records)} records, {n_docs} documents, 10 folds by document) - AUROC; "
        f"'acc@thr' = accuracy at the default threshold; baselines: AUROC",
        records,
        arrays,
        check.threshold,
    )
    unread = [i for i, r in enumerate(records) if r.half == "unread"]
    table(
        f"OUT-OF-FOLD, UNREAD HALF ({len(unread)} records, {len({records[i].context for i in unread})} documents "
        f"never read while the features were designed)",
        [records[i] for i in unread],
        {k: v[unread] for k, v in arrays.items()},
        check.threshold,
    )
    design = [i for i, r in enumerate(records) if r.half == "design"]
    line = "; ".join(f"{fam} {v:.3f}" for fam, v in family_aurocs(records, design, arrays["check"][design]).items())
    print(f"\nOUT-OF-FOLD, DESIGN HALF ({len(design)} records; read while designing, so optimistic): {line}")

    if not args.no_latency:
        pairs = latency_pairs(records, 50)
        lens = [(len(c), len(a)) for c, a in pairs]
        print(f"\nLatency of GroundingCheck.score, {args.latency_runs} calls over {len(pairs)} pairs "
              f"(context {min(c for c, _ in lens)}-{max(c for c, _ in lens)} chars, answer "
              f"{min(a for _, a in lens)}-{max(a for _, a in lens)} chars):")
        check.score("Warm-up context sentence.", "Warm-up answer.")
        shipped = time_calls(check, pairs, args.latency_runs)
        print(f"  shipped configuration (embeddings {'on' if check.use_embeddings else 'off'}): "
              f"p50 {np.percentile(shipped, 50):.1f} ms, p99 {np.percentile(shipped, 99):.1f} ms")
        cold = time_calls(check, pairs, args.latency_runs, clear=get_lexicon().cache_clear)
        print(f"  shipped configuration, WordNet lookups uncached before each call: "
              f"p50 {np.percentile(cold, 50):.1f} ms, p99 {np.percentile(cold, 99):.1f} ms")
        forced = GroundingCheck(use_embeddings=True)
        forced.score("Another warm-up context sentence.", "Another warm-up answer.")  # loads MiniLM
        uncached = time_calls(forced, pairs, args.latency_runs, clear=forced.embedder.cache_clear)
        print(f"  embedding path forced, embedder cache cleared before each call: "
              f"p50 {np.percentile(uncached, 50):.1f} ms, p99 {np.percentile(uncached, 99):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
