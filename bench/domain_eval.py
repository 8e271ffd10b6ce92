"""The sensitive-domain detector (gateway/risk/domains.py), leave one source out.

For every source in training/domains/sources.py (public questions and documents, each labelled with
its set's domain): fit the domain head on all the other sources (training/domains/fit.py: its
regularization and offsets chosen on those sources alone) and score the one left out. Printed per
source, beside the lexicon alone (the simple baseline, and what a policy with
`embeddings.enabled: false` runs):
- domain sources: the share flagged as their own domain at the policy's threshold (0.4);
- general sources: the share flagged as any of the four domains (false positives);
- per domain: AUROC of its score, its left-out texts against the general sources' left-out texts.
The headline is the mean over left-out sources. 95% Wilson intervals for shares, bootstrap for AUROC.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/domain_eval.py --mirrors DIR [--json OUT]

`--mirrors`: a directory holding the fetched repositories (`owner+name/repo` git directories, as
the search tool's `fetch` leaves them). Texts flagged by ../shared/contamination/check.py are
dropped. ~1 min to embed on 2 cores, then ~1 min a fold.
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

from gateway.risk.domains import HEAD_DOMAINS, DomainScorer  # noqa: E402
from gateway.risk.embeddings import get_embedder  # noqa: E402
from training.domains import fit  # noqa: E402
from training.domains.sources import LABELS, load  # noqa: E402
from training.injection.fit import auroc, auroc_ci, wilson  # noqa: E402

THRESHOLD = 0.4


def loso(d: fit.Data, log=print) -> np.ndarray:
    """(texts, domains): every source's scores from a head fitted without it."""
    out = np.zeros((len(d.label), len(HEAD_DOMAINS)), np.float32)
    for k, name in enumerate(d.names):
        t = time.time()
        held = d.of_sources({name})
        head, chosen = fit.fit_head(d.subset(np.setdiff1d(np.arange(len(d.label)), held)))
        test = d.subset(held)
        out[held] = 1.0 / (1.0 + np.exp(-fit.text_logits(head.weight, head.bias, test)))
        log(f"  [{k + 1}/{len(d.names)}] {name}: C={chosen['C']} ({time.time() - t:.0f} s)")
    return out


def flagged(scores: np.ndarray, label: int) -> np.ndarray:
    """Own domain at the threshold; for general texts, any domain."""
    if LABELS[label] == "general":
        return scores.max(axis=1) >= THRESHOLD
    return scores[:, HEAD_DOMAINS.index(LABELS[label])] >= THRESHOLD


def report(d: fit.Data, kinds: dict[str, np.ndarray]) -> dict:
    rows, summary = [], {}
    print(f"{'left-out source':<52}{'domain':<10}{'n':>5}  " + "  ".join(f"{k:>20}" for k in kinds))
    for s, name in enumerate(d.names):
        idx = np.flatnonzero(d.source == s)
        label = int(d.label[idx[0]])
        cells, row = [], {"source": name, "domain": LABELS[label], "n": len(idx)}
        for k, x in kinds.items():
            hit = flagged(x[idx], label)
            lo, hi = wilson(int(hit.sum()), len(hit))
            cells.append(f"{hit.mean():.2f} [{lo:.2f},{hi:.2f}]")
            row[k] = [round(float(hit.mean()), 4), round(lo, 4), round(hi, 4)]
        rows.append(row)
        print(f"{name:<52}{LABELS[label]:<10}{len(idx):>5}  " + "  ".join(f"{c:>20}" for c in cells))
    print("\nmean over left-out sources: detection (domain sources) / false positives (general sources)")
    for k in kinds:
        det = np.mean([r[k][0] for r in rows if r["domain"] != "general"])
        fp = np.mean([r[k][0] for r in rows if r["domain"] == "general"])
        summary[k] = {"detection": round(float(det), 4), "false_positives": round(float(fp), 4)}
        print(f"  {k:<10} detection {det:.3f}   false positives {fp:.3f}")
    print("\nAUROC of each domain's score, its texts against the general sources' (95% bootstrap interval)")
    general = d.label == LABELS.index("general")
    for j, dom in enumerate(HEAD_DOMAINS):
        own = d.label == LABELS.index(dom)
        cells = []
        for k, x in kinds.items():
            a, (lo, hi) = auroc(x[own, j], x[general, j]), auroc_ci(x[own, j], x[general, j])
            summary[k][f"auroc_{dom}"] = [round(a, 4), round(lo, 4), round(hi, 4)]
            cells.append(f"{k} {a:.3f} [{lo:.2f},{hi:.2f}]")
        print(f"  {dom:<10} {len(set(d.source[own].tolist()))} sources  " + "  ".join(cells))
    return {"sources": rows, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirrors", type=Path, required=True)
    ap.add_argument("--json", type=Path, help="write the per-source figures here")
    args = ap.parse_args()
    sources = load(args.mirrors)
    print(f"{sum(len(s.texts) for s in sources)} texts from {len(sources)} sources "
          f"({sum(s.dropped for s in sources)} dropped by the contamination check)")
    t = time.time()
    embedder = get_embedder()
    d = fit.embed(sources, embedder)
    print(f"embedded {len(d.vectors)} windows ({embedder.precision}) in {time.time() - t:.0f} s\n")
    lexicons = DomainScorer(None).lexicons
    kinds = {
        "learned": loso(d),
        "lexicon": np.array([[lexicons[dom].score(n) for dom in HEAD_DOMAINS] for n in d.norms]),
    }
    print()
    out = report(d, kinds)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
