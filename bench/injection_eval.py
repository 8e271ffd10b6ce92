"""Leave-one-source-out evaluation of the injection detector, beside two simple baselines.

For every source (one upstream dataset, or one generated family with its own documents and its own
instruction pool: `training/injection/sources/`), the model (both parts and the per-role
operating points) is fitted on all the other sources and scores the one left out; nothing of the
left-out source reaches the fit:
- training texts whose first window is a near copy (embedding cosine >= 0.95) of any left-out text
  are dropped from that fold, so DAN 6.0 in one source does not teach the fold DAN 6.2 in another;
- each role's operating point (the logit that becomes 0.5) is chosen as the shipped model's is, on
  leave-one-source-out scores of the training sources only: the lowest logit keeping their benign
  false positives at or under `--target-fp`, each source weighing the same. Fold S's score for a
  training source T comes from the parts fitted without S and T (and without either's near copies):
  one fit per pair of sources serves both folds (210 pairs for 21 sources, `--workers` at a time;
  about 40 min on two cores, 2026-12-06).
Figures per left-out source: detection (attacks flagged) and false-positive rate at that threshold,
with 95% Wilson intervals, and AUROC with a 95% bootstrap interval where a source holds both labels.
Baselines under the same protocol: `keywords` (flagged when any of 16 classic injection phrases
occurs; AUROC from how many occur) and `length` (AUROC of character count alone: the dev file's
confound). The headline is the mean over left-out sources.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/injection_eval.py
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/injection_eval.py --json build/injection-loso.json
    HF_HUB_OFFLINE=1 .venv/bin/python bench/injection_eval.py --held-back    # the shipped head, held-back sources

`--with-held-back`: the sources the recipe holds back (`training/injection/dataset.py: HELD_BACK`)
join the rotation, as training sources of the other folds and as left-out sources of their own.

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

from gateway.risk.injection import InjectionHead, role_index  # noqa: E402
from gateway.risk.prepare import CHUNK_CHARS, MAX_CHUNKS  # noqa: E402
from training.injection.dataset import HELD_BACK, load_all, summary  # noqa: E402
from training.injection.features import featurize  # noqa: E402
from training.injection.fit import (  # noqa: E402
    Data,
    auroc,
    auroc_ci,
    fit_parts,
    part_logits,
    predict,
    rate,
    role_thresholds,
)

OTHER_TARGETS = (0.01, 0.02, 0.03, 0.05, 0.10, 0.20)

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


def indices(d: Data, source: str) -> np.ndarray:
    return np.array([i for i, e in enumerate(d.examples) if e.source == source])


def dropped_for(d: Data, source: str) -> np.ndarray:
    test = indices(d, source)
    return near_copies(d.vectors, d.owner, np.setdiff1d(np.arange(len(d.examples)), test), test)


_DATA: dict = {}  # what each worker reads (`_load`, once per worker)


def _load(d: Data, dropped: dict[str, np.ndarray]) -> None:
    _DATA.update(data=d, dropped=dropped)


def _pair(task: tuple[str, str]) -> tuple[str, str, np.ndarray, np.ndarray]:
    import torch

    torch.set_num_threads(1)
    d, dropped = _DATA["data"], _DATA["dropped"]
    a, b = task
    ia, ib = indices(d, a), indices(d, b)
    train = np.setdiff1d(np.arange(len(d.examples)), np.concatenate([ia, ib, dropped[a], dropped[b]]))
    head = fit_parts(d.subset(train))
    za, zb = (sum(part_logits(head, d.subset(i))) for i in (ia, ib))
    return a, b, za, zb


def inner_scores(d: Data, sources: list[str], dropped: dict[str, np.ndarray], workers: int) -> dict[str, np.ndarray]:
    """For every left-out source S, every text's leave-one-source-out logit as fold S sees it: a
    text of source T scored by the parts fitted without S and T. NaN for S's own texts."""
    import multiprocessing

    out = {s: np.full(len(d.examples), np.nan) for s in sources}
    tasks = [(a, b) for k, a in enumerate(sources) for b in sources[k + 1 :]]
    started = time.time()
    # Workers start from a fresh interpreter (forkserver), not a fork of this process: once the
    # embedder or BLAS has started thread pools here (a first run embeds its windows), forked
    # children hang in them. The data reaches each worker once, pickled (~100 MB).
    with multiprocessing.get_context("forkserver").Pool(workers, initializer=_load, initargs=(d, dropped)) as pool:
        for n, (a, b, za, zb) in enumerate(pool.imap_unordered(_pair, tasks), 1):
            out[a][indices(d, b)] = zb  # fold a, inner source b
            out[b][indices(d, a)] = za
            if n % 20 == 0 or n == len(tasks):
                print(f"  inner fits {n}/{len(tasks)} ({time.time() - started:.0f} s)", flush=True)
    return out


def fold(d: Data, source: str, target_fp: float, inner: np.ndarray, dropped: np.ndarray) -> dict:
    test = indices(d, source)
    train = np.setdiff1d(np.setdiff1d(np.arange(len(d.examples)), test), dropped)
    tr, te = d.subset(train), d.subset(test)
    head = fit_parts(tr)
    oof = inner[train]
    z = predict(head, te)  # the parts' summed logits, before any operating point
    y = te.y
    roles = np.array([role_index(e.role) for e in te.examples])
    t = role_thresholds(tr.examples, oof, target_fp)
    hit = z >= t[roles]
    out = {"source": source, "attacks": int(y.sum()), "benign": int((~y).sum()), "near_copies_dropped": len(dropped),
           "thresholds": t.tolist(),
           "families": sorted({e.family for e in te.examples}), "roles": sorted({e.role for e in te.examples})}
    out.update(metrics(z, hit, y, te.examples))
    # what other operating points would give: the same choice at other out-of-fold targets
    out["at_target"] = {}
    for other in OTHER_TARGETS:
        h = z >= role_thresholds(tr.examples, oof, other)[roles]
        out["at_target"][other] = [float(h[y].mean()) if y.any() else None, float(h[~y].mean()) if (~y).any() else None]
    return out


def metrics(z: np.ndarray, hit: np.ndarray, y: np.ndarray, examples: list) -> dict:
    """Detection and false positives at the operating point (`hit`), AUROC of the scores `z`, and the
    keyword and length baselines beside them, for one scored source."""
    kw = np.array([keyword_hits(e.text) for e in examples], dtype=float)
    length = np.array([len(e.text) for e in examples], dtype=float)
    out: dict = {}
    if y.any():
        out["detection"] = rate(hit[y])
        out["kw_detection"] = rate(kw[y] > 0)
    if (~y).any():
        out["fp"] = rate(hit[~y])
        out["kw_fp"] = rate(kw[~y] > 0)
    if y.any() and (~y).any():
        out["auroc"] = (auroc(z[y], z[~y]), *auroc_ci(z[y], z[~y]))
        out["kw_auroc"] = auroc(kw[y], kw[~y])
        out["length_auroc"] = auroc(length[y], length[~y])
    return out


def score_held_back(chunk_chars: int, max_chunks: int) -> int:
    """The shipped head on the sources the recipe holds back: left-out figures by construction."""
    head = InjectionHead.load()
    examples = [e for e in load_all(held_back=True) if e.source in HELD_BACK]
    if not examples:
        print("no held-back source is built: run its converter (training/injection/README.md)")
        return 1
    vectors, owner = featurize(examples, chunk_chars=chunk_chars, max_chunks=max_chunks)
    data = Data.of(examples, vectors, owner)
    for source in sorted({e.source for e in examples}):
        te = data.subset(indices(data, source))
        z, y = predict(head, te), te.y
        m = metrics(z, z >= 0, y, te.examples)
        line = f"{source:30s} A={int(y.sum()):5d} B={int((~y).sum()):5d}"
        if "detection" in m:
            line += f"  det {fmt(m['detection'])}  keywords {m['kw_detection'][0]:.3f}"
        if "fp" in m:
            line += f"  fp {fmt(m['fp'])}  keywords {m['kw_fp'][0]:.3f}"
        if "auroc" in m:
            line += f"  auroc {fmt(m['auroc'])}"
        print(line)
    return 0


def fmt(r: tuple[float, float, float] | None) -> str:
    return "" if r is None else f"{r[0]:.3f} [{r[1]:.2f}, {r[2]:.2f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-fp", type=float, default=0.03, help="benign false-positive rate the threshold "
                    "is chosen for, on the training sources' leave-one-source-out scores")
    ap.add_argument("--workers", type=int, default=2, help="inner fits at a time (one thread each)")
    ap.add_argument("--only", nargs="*", help="left-out sources to score (default: all; the inner fits "
                    "cover every pair of sources either way)")
    ap.add_argument("--chunk-chars", type=int, default=CHUNK_CHARS, help="window size (characters)")
    ap.add_argument("--max-chunks", type=int, default=MAX_CHUNKS, help="windows per text at most")
    ap.add_argument("--json", type=Path, help="write the per-source figures here")
    ap.add_argument("--with-held-back", action="store_true", help="the held-back sources join the rotation "
                    "(training/injection/dataset.py: HELD_BACK; the shipped head never trained on them)")
    ap.add_argument("--held-back", action="store_true", help="only score the held-back sources with the "
                    "shipped head (gateway/risk/data/injection_head.npz), which never saw them; seconds")
    args = ap.parse_args(argv)
    if args.held_back:
        return score_held_back(args.chunk_chars, args.max_chunks)

    started = time.time()
    examples = load_all(held_back=args.with_held_back)
    print(summary(examples))
    vectors, owner = featurize(examples, chunk_chars=args.chunk_chars, max_chunks=args.max_chunks)
    print(f"{len(examples)} texts, {len(vectors)} windows; embedded in {time.time() - started:.0f} s\n")
    data = Data.of(examples, vectors, owner)

    sources = sorted({e.source for e in examples})
    dropped = {s: dropped_for(data, s) for s in sources}
    inner = inner_scores(data, sources, dropped, args.workers)
    rows = []
    for source in sources:
        if args.only and source not in args.only:
            continue
        r = fold(data, source, args.target_fp, inner[source], dropped[source])
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
