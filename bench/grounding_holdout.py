"""The shipped grounding model on SummEdits summaries that are NOT in `grounding-dev.jsonl`.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/grounding_holdout.py [--raw DIR] [--data FILE]
                                                                              [--cache FILE.npz]

Why: every figure `bench/grounding_eval.py` prints comes from the 3,000 dev records, which the
features were designed on (the design half was read record by record; the unread half's aggregate
figure was printed with each refit). The raw SummEdits files the dev file was drawn from
(`../shared/evals/raw/summedits/`, the same six domains) hold 1,517 more summaries that no session
has read or scored: the dev file took 2,000 of 3,517, balanced by label. They are a test set the
model has never been fitted, tuned or designed on.

Protocol (fixed before the first run, 2026-11-29 session 7; the first run's figures are in
`bench/RESULTS.md`):
- Records: every record of `summedits_{ectsum,news,qmsumm,sales_call,sales_email,scitldr}.json`
  whose id (`summedits-<domain>:<id>`) is not in the dev file, with `doc` and `summary` stripped as
  the dev file has them; a record whose (document, summary) pair is a dev pair or an earlier
  holdout pair is dropped (the dev file merged 30 such repeats). label 1 = supported, 0 = hallucinated.
- Scores: `GroundingCheck().score(doc, summary)`, the shipped model and configuration exactly as
  the gateway runs it (fitted on all 3,000 dev records; no refit here).
- Caveats, printed with the figures: the labels are unbalanced (most summaries left over are
  edits, i.e. hallucinated) and so is the domain mix (news and ectsum hold most supported ones);
  most documents also appear in the dev file with other summaries, so the shipped model has seen
  the document (not these summaries). AUROC is insensitive to the label balance; accuracy is not,
  so balanced accuracy (mean of the per-label accuracies) is printed beside it.
- Intervals: 95% percentile bootstrap over documents, 2,000 resamples. The tables split the
  records by domain and by where their document lies in the dev file (unread half, design half,
  not in the dev file).
- Baselines on the same records: answer length, content-word overlap, plain embedding similarity,
  as in `bench/grounding_eval.py`.
- `--pooled` (added 2026-11-29, session 8) also prints one figure over every SummEdits summary that
  no choice was made on: these and the dev file's unread half, scored out-of-fold. The two sets'
  scores come from different fits (the shipped model; the nine-fold models), of the same features
  and C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))

from fit_grounding import DEFAULT_DATA, DiskCachedEmbedder, Record, cross_validate, featurize, load_records  # noqa: E402
from grounding_eval import SUBSOURCES, baselines, slice_stats  # noqa: E402

from gateway.hallucination.grounding import GroundingCheck  # noqa: E402

DEFAULT_RAW = DEFAULT_DATA.parent / "raw" / "summedits"


def load_holdout(raw: Path, dev: list[Record]) -> list[Record]:
    dev_ids = {r.id for r in dev}
    seen = {(r.context, r.answer) for r in dev}
    out = []
    for domain in SUBSOURCES:
        path = raw / f"summedits_{domain}.json"
        for row in json.loads(path.read_text(encoding="utf-8")):
            rid = f"summedits-{domain}:{row['id']}"
            label = str(row["label"])
            if rid in dev_ids:
                continue
            if label not in ("0", "1"):
                raise ValueError(f"{path}: {rid}: unknown label {label!r}")
            pair = (row["doc"].strip(), row["summary"].strip())
            if pair in seen:
                continue
            seen.add(pair)
            out.append(Record(rid, pair[0], "", pair[1], int(label == "1"), f"summedits/{path.name}"))
    return out


def line(name: str, recs: list[Record], idx: list[int], cols: dict[str, np.ndarray], threshold: float) -> str:
    st = slice_stats(recs, idx, cols, threshold)
    head = f"{name:<26}{f'{st.n} ({st.n_sup}/{st.n - st.n_sup})':>15}  "
    if not 0 < st.n_sup < st.n:
        return head + "one label only"
    out = head + f"{f'{st.auroc:.3f} [{st.ci[0]:.3f}, {st.ci[1]:.3f}]':<26}{st.acc:>7.3f}{st.balanced_acc:>8.3f}"
    return out + "".join(f"{v:>11.3f}" for v in st.baselines.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the shipped grounding model on SummEdits records outside the dev file")
    ap.add_argument("--raw", type=Path, default=DEFAULT_RAW)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=None, help="npz keeping baseline embeddings between runs")
    ap.add_argument("--pooled", action="store_true",
                    help="also pool the holdout with the dev file's unread half, scored out-of-fold (~2 min more)")
    args = ap.parse_args(argv)

    dev = load_records(args.data)
    recs = load_holdout(args.raw, dev)
    check = GroundingCheck()
    print(f"holdout: {len(recs)} SummEdits records from {args.raw} not in {args.data.name}; "
          f"model {check.model.version} ({check.version}), fitted on the dev file; threshold {check.threshold:.4f}")
    t0 = time.perf_counter()
    check_scores = np.array([check.score(r.context, r.answer).score for r in recs])
    arrays = {"check": check_scores, **baselines(recs, DiskCachedEmbedder(args.cache))}
    print(f"scored in {time.perf_counter() - t0:.0f} s (baselines' embeddings included)")

    halves = {r.context: r.half for r in dev}
    where = ["unread half" if halves.get(r.context) == "unread" else "design half" if r.context in halves
             else "not in dev" for r in recs]
    header = f"{'slice':<26}{'n (sup/hal)':>15}  {'check AUROC [95% CI]':<26}{'acc':>7}{'bal.acc':>8}"
    header += "".join(f"{k:>11}" for k in arrays if k != "check")
    print("\nAUROC of the shipped check ('acc' at the default threshold; baselines: AUROC)")
    print(f"{header}\n{'-' * len(header)}")
    slices = [("SummEdits holdout, all", list(range(len(recs))))]
    slices += [(f"  {d}", [i for i, r in enumerate(recs) if r.subsource == d]) for d in SUBSOURCES]
    slices += [(f"  document: {w}", [i for i, x in enumerate(where) if x == w])
               for w in ("unread half", "design half", "not in dev")]
    for name, idx in slices:
        if idx:
            print(line(name, recs, idx, arrays, check.threshold))
    print(f"\n{len({r.context for r in recs})} documents; labels and domains are unbalanced (see the docstring).")
    if args.pooled:
        print(pooled_line(dev, recs, check_scores, check, DiskCachedEmbedder(args.cache)))
    return 0


def pooled_line(dev: list[Record], recs: list[Record], scores: np.ndarray, check: GroundingCheck, embedder) -> str:
    """Every SummEdits summary no choice was made on: the holdout, scored by the shipped model, and
    the dev file's unread half, scored out-of-fold as `bench/grounding_eval.py` does (each record
    by a model fitted on the nine folds without its document, with the shipped C)."""
    feats = featurize(dev, embedder, log=lambda _: None)
    oof = cross_validate(feats, list(range(len(dev))), float(check.model.meta["C"]))
    unread = [i for i, r in enumerate(dev) if r.family == "SummEdits" and r.half == "unread"]
    both = [dev[i] for i in unread] + recs
    cols = {"check": np.concatenate([oof[unread], scores])}
    st = slice_stats(both, list(range(len(both))), cols, check.threshold)
    return (f"pooled with the dev file's unread half (out-of-fold): {st.n} records ({st.n_sup} supported), "
            f"{len({r.context for r in both})} documents: AUROC {st.auroc:.3f} [{st.ci[0]:.3f}, {st.ci[1]:.3f}]")


if __name__ == "__main__":
    raise SystemExit(main())
