"""Leave-one-source-out evaluation of the injection detector, beside two simple baselines.

For every source (one upstream dataset, or one generated family with its own documents and its own
instruction pool: `training/injection/sources/`), the model (both parts, their mix per role and the
operating points) is fitted on all the other sources and scores the one left out; nothing of the
left-out source reaches the fit:
- training texts whose first window is a near copy (embedding cosine >= 0.95) of any left-out text
  are dropped from that fold, so DAN 6.0 in one source does not teach the fold DAN 6.2 in another;
- the mix of the two parts and each role's operating point (the logit that becomes 0.5) are fitted
  on grouped out-of-fold scores of the training sources only (`--inner-folds`): the lowest logit
  keeping their benign false positives at or under `--target-fp`, each source weighing the same.
Figures per left-out source: detection (attacks flagged) and false-positive rate at that threshold,
with 95% Wilson intervals, and AUROC with a 95% bootstrap interval where a source holds both labels.
Baselines under the same protocol: `keywords` (flagged when any of 16 classic injection phrases
occurs; AUROC from how many occur) and `length` (AUROC of character count alone: the dev file's
confound). The headline is the mean over left-out sources.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/injection_eval.py
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/injection_eval.py --json build/injection-loso.json

The training data is rebuilt from the manifest first (`training/injection/README.md`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.risk.injection import role_index  # noqa: E402
from gateway.risk.prepare import CHUNK_CHARS, MAX_CHUNKS  # noqa: E402
from training.injection.dataset import load_all, summary  # noqa: E402
from training.injection.features import featurize  # noqa: E402
from training.injection.fit import (  # noqa: E402
    Data,
    auroc,
    auroc_ci,
    fit_parts,
    grouped_oof,
    predict,
    role_thresholds,
    wilson,
)

OTHER_TARGETS = (0.01, 0.02, 0.05, 0.10, 0.20)

KEYWORDS = re.compile(
    r"ignore (all |the )?(previous|prior|above)|disregard (all |the )?(previous|prior|above)|"
    r"forget (all |everything|your)|system prompt|new instructions|developer mode|do anything now|"
    r"\bdan\b|jailbreak|you are now|pretend (to be|you are)|act as|no restrictions|"
    r"without (any )?(restrictions|filters)|reveal (your|the) (prompt|instructions)|override",
    re.I,
)


def keyword_hits(text: str) -> int:
    return len({m.group(0).lower() for m in KEYWORDS.finditer(text)})


def near_copies(vectors: np.ndarray, owner: np.ndarray, train: np.ndarray, test: np.ndarray,
                limit: float = 0.95) -> np.ndarray:
    """Training indices whose first window has cosine >= `limit` with some left-out text's."""
    first = np.full(owner.max() + 1, -1)
    first[owner[::-1]] = np.arange(len(owner))[::-1]  # the first window of each text
    a = vectors[first[train]]
    b = vectors[first[test]]
    close = np.zeros(len(train), dtype=bool)
    for i in range(0, len(b), 2048):
        close |= (a @ b[i : i + 2048].T).max(axis=1) >= limit
    return train[close]


def rate(flags: np.ndarray) -> tuple[float, float, float]:
    k, n = int(flags.sum()), len(flags)
    lo, hi = wilson(k, n)
    return (k / n if n else float("nan")), lo, hi


def fold(d: Data, source: str, target_fp: float, inner_folds: int) -> dict:
    test = np.array([i for i, e in enumerate(d.examples) if e.source == source])
    train = np.array([i for i, e in enumerate(d.examples) if e.source != source])
    dropped = near_copies(d.vectors, d.owner, train, test)
    train = np.setdiff1d(train, dropped)
    tr, te = d.subset(train), d.subset(test)
    words, window = grouped_oof(tr, inner_folds)
    head = fit_parts(tr)
    oof = head.combine(words, window, [e.role for e in tr.examples])
    z = predict(head, te)  # the parts' summed logits, before any operating point
    y = te.y
    roles = np.array([role_index(e.role) for e in te.examples])
    t = role_thresholds(tr.examples, oof, target_fp)
    hit = z >= t[roles]
    kw = np.array([keyword_hits(e.text) for e in te.examples], dtype=float)
    length = np.array([len(e.text) for e in te.examples], dtype=float)
    out = {"source": source, "attacks": int(y.sum()), "benign": int((~y).sum()), "near_copies_dropped": len(dropped),
           "families": sorted({e.family for e in te.examples}), "roles": sorted({e.role for e in te.examples})}
    if y.any():
        out["detection"] = rate(hit[y])
        out["kw_detection"] = rate(kw[y] > 0)
    if (~y).any():
        out["fp"] = rate(hit[~y])
        out["kw_fp"] = rate(kw[~y] > 0)
    # what other operating points would give: the same choice at other out-of-fold targets
    out["at_target"] = {}
    for other in OTHER_TARGETS:
        h = z >= role_thresholds(tr.examples, oof, other)[roles]
        out["at_target"][other] = [float(h[y].mean()) if y.any() else None, float(h[~y].mean()) if (~y).any() else None]
    if y.any() and (~y).any():
        out["auroc"] = (auroc(z[y], z[~y]), *auroc_ci(z[y], z[~y]))
        out["kw_auroc"] = auroc(kw[y], kw[~y])
        out["length_auroc"] = auroc(length[y], length[~y])
    return out


def fmt(r: tuple[float, float, float] | None) -> str:
    return "" if r is None else f"{r[0]:.3f} [{r[1]:.2f}, {r[2]:.2f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-fp", type=float, default=0.05, help="benign false-positive rate the threshold "
                    "is chosen for, on the training sources' out-of-fold scores")
    ap.add_argument("--inner-folds", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="left-out sources to score (default: all)")
    ap.add_argument("--chunk-chars", type=int, default=CHUNK_CHARS, help="window size (characters)")
    ap.add_argument("--max-chunks", type=int, default=MAX_CHUNKS, help="windows per text at most")
    ap.add_argument("--json", type=Path, help="write the per-source figures here")
    args = ap.parse_args(argv)

    started = time.time()
    examples = load_all()
    print(summary(examples))
    vectors, owner = featurize(examples, chunk_chars=args.chunk_chars, max_chunks=args.max_chunks)
    print(f"{len(examples)} texts, {len(vectors)} windows; embedded in {time.time() - started:.0f} s\n")
    data = Data.of(examples, vectors, owner)

    rows = []
    for source in sorted({e.source for e in examples}):
        if args.only and source not in args.only:
            continue
        r = fold(data, source, args.target_fp, args.inner_folds)
        rows.append(r)
        print(f"{source:30s} A={r['attacks']:5d} B={r['benign']:5d}  det {fmt(r.get('detection')):22s} "
              f"fp {fmt(r.get('fp')):22s} auroc {fmt(r.get('auroc')):22s} | keywords det "
              f"{r.get('kw_detection', (float('nan'),))[0]:.3f} fp {r.get('kw_fp', (float('nan'),))[0]:.3f} "
              f"auroc {r.get('kw_auroc', float('nan')):.3f} | length auroc {r.get('length_auroc', float('nan')):.3f}"
              f"  (near copies dropped {r['near_copies_dropped']})", flush=True)

    def mean(key: str, rs: list[dict]) -> float:
        vals = [r[key][0] if isinstance(r[key], tuple) else r[key] for r in rs if key in r]
        return float(np.mean(vals)) if vals else float("nan")

    print("\nmean over left-out sources:")
    for name, key, kkey in (("detection", "detection", "kw_detection"), ("false positives", "fp", "kw_fp"),
                            ("AUROC", "auroc", "kw_auroc")):
        print(f"  {name:16s} model {mean(key, rows):.3f}   keywords {mean(kkey, rows):.3f}")
    for fam in ("direct", "jailbreak", "optimized", "indirect", "trigger", "benign", "clean_doc"):
        sel = [r for r in rows if fam in r["families"]]
        if sel:
            key = "detection" if fam in ("direct", "jailbreak", "optimized", "indirect") else "fp"
            print(f"  sources with {fam:10s} ({len(sel):2d}): {key} {mean(key, sel):.3f}  keywords "
                  f"{mean('kw_' + key, sel):.3f}")
    print("\nat other out-of-fold targets (mean over left-out sources: detection / false positives):")
    for other in OTHER_TARGETS:
        det = [r["at_target"][other][0] for r in rows if r["at_target"][other][0] is not None]
        fp = [r["at_target"][other][1] for r in rows if r["at_target"][other][1] is not None]
        print(f"  {other:.2f}: {np.mean(det):.3f} / {np.mean(fp):.3f}")
    print(f"\n{time.time() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
