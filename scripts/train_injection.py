"""Rebuild the injection head (`gateway/risk/data/injection_head.npz`) from the training sources.

    # 1. the data: fetch the repositories the manifest names, then run each converter
    python3 training/injection/sources/attacks.py --mirrors DIR      # and benign.py, indirect.py, ...
    # 2. the fit (embeds every window with the shared MiniLM, cached under training/injection/build/)
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python scripts/train_injection.py

What it does: every record of every source (`training/injection/dataset.py`), each window embedded
exactly as the gateway embeds it at run time; the window head and the word model fitted with every
source weighing the same (`training/injection/fit.py`); each role's operating point chosen on
leave-one-source-out scores (the logit whose benign false-positive rate, each source weighing the
same, is `--target-fp`), stored so that 0.5 is that point. Fixed seeds: the
same data gives the same weights.

Time on this project's 2-core machine (2026-12-05): embedding the 32,448 windows of 18,195 texts
took 12 min on a quiet machine (~45 windows/s; cached under training/injection/build/, so a rerun
embeds only new windows). The fits (one per source for the operating points, and the final one):
335 s on 2026-12-06 (21 sources; 53 s with the three grouped folds before).
`bench/injection_eval.py` measures the same recipe leave-one-source-out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.risk.embeddings import Embedder  # noqa: E402
from gateway.risk.injection import HEAD_PATH  # noqa: E402
from training.injection.dataset import load_all, summary  # noqa: E402
from training.injection.features import featurize  # noqa: E402
from training.injection.fit import Data, fit_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-fp", type=float, default=0.03)
    ap.add_argument("--out", type=Path, default=HEAD_PATH)
    ap.add_argument("--with-held-back", action="store_true",
                    help="train on the held-back sources too (training/injection/dataset.py: HELD_BACK)")
    args = ap.parse_args(argv)
    started = time.time()
    examples = load_all(held_back=args.with_held_back)
    print(summary(examples))
    embedder = Embedder(cache_size=0, batch_size=64)  # the gateway's precision: the head reads what it computes
    vectors, owner = featurize(examples, embedder)
    embedded = time.time() - started
    head = fit_model(Data.of(examples, vectors, owner), args.target_fp)
    counts = Counter(e.source for e in examples)
    head.meta.update({
        "trained": dt.date.today().isoformat(),
        "sources": dict(sorted(counts.items())),
        "texts": len(examples),
        "windows": int(len(vectors)),
        "target_fp": args.target_fp,
        "embedder_precision": embedder.precision,
        "rebuild": "scripts/train_injection.py",
    })
    head.save(args.out)
    shown = args.out.resolve().relative_to(ROOT) if args.out.resolve().is_relative_to(ROOT) else args.out
    print(f"wrote {shown} ({args.out.stat().st_size / 1024:.0f} KiB): {len(examples)} texts, "
          f"{len(vectors)} windows, thresholds by role {head.offsets.round(3).tolist()}; "
          f"embedding {embedded:.0f} s, "
          f"total {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
