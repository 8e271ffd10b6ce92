"""Rebuild the grounding verifier (`gateway/hallucination/data/grounding_verifier.npz`).

    # 1. the data: fetch the repositories the manifests name, then run each converter
    python3 training/grounding/sources/summedits.py --mirrors DIR     # and every other sources/*.py
    # 2. the leave-one-source-out figures (they also choose the verdict threshold)
    HF_HUB_OFFLINE=1 nice .venv/bin/python bench/grounding_eval.py --loso
    # 3. the fit
    HF_HUB_OFFLINE=1 nice .venv/bin/python scripts/train_grounding.py

What it does: every training source (`training/grounding/dataset.py`; evaluation-only sources are
left out), each giving up to 500 labelled claim pairs per label; the frozen layers' output computed
once (and cached under `training/grounding/build/cache/`); the top layers and the head fine-tuned as
`training/grounding/fit.py` says; the changed weights stored as fp16 with the threshold that
`bench/grounding_eval.py --loso` chose (`training/grounding/loso.json`). Fixed seeds.

Time on this project's 2-core machine (2026-12-06, AMD EPYC): the shipped model, 9,797 pairs from
eight sources for three epochs, took 400 s (346 s of fitting; the frozen layers' outputs came from
the cache `--loso` had filled, about three minutes more without it); `bench/grounding_eval.py
--loso`, nine folds of ~8,500 pairs each, took 2,894 s (3,128 s on 2026-12-07, another host). Each
run prints its own `took` line. `--combiner-only` (seconds) is what moving the comparison's geometry
to one chunk per claim took: training reads each claim's best chunk only, so the weights stayed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from gateway import minilm  # noqa: E402
from gateway.hallucination.verifier import GEOMETRY, WEIGHTS, recorded_geometry, trainable_state  # noqa: E402
from training.grounding import fit  # noqa: E402
from training.grounding.dataset import EVAL_ONLY, load_sources  # noqa: E402

CACHE = ROOT / "training" / "grounding" / "build" / "cache"
LOSO = ROOT / "training" / "grounding" / "loso.json"
VERSION = "verifier-1"


def combiner_meta() -> dict:
    """The threshold and the combiner `bench/grounding_eval.py` chose on left-out sources, and the
    geometry they were chosen at."""
    loso = json.loads(LOSO.read_text()) if LOSO.exists() else {}
    measured = recorded_geometry(loso)
    if loso and measured != GEOMETRY:
        # its threshold and combiner were chosen on scores at another geometry
        raise SystemExit(f"{LOSO.name} was measured at {measured}, this build compares {GEOMETRY}: "
                         "rerun bench/grounding_eval.py --loso")
    out = {"threshold": loso.get("threshold", 0.5), **GEOMETRY}
    if "combiner" in loso:
        out["combiner"] = loso["combiner"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--epochs", type=int, default=fit.EPOCHS)
    ap.add_argument("--combiner-only", action="store_true",
                    help="keep the fitted weights in --out, take the combiner and threshold from loso.json "
                    "(after bench/grounding_eval.py --combine)")
    args = ap.parse_args(argv)
    started = time.time()
    if args.combiner_only:
        with np.load(args.out) as f:
            state = {k: f[k] for k in f.files}
        meta = {**json.loads(str(state["meta"])), **combiner_meta()}
        state["meta"] = np.array(json.dumps(meta, sort_keys=True))
        np.savez_compressed(args.out, **state)
        print(f"wrote {args.out}: threshold {meta['threshold']}, combiner {meta.get('combiner')}")
        return 0
    sources = {k: v for k, v in load_sources().items() if k not in EVAL_ONLY}
    if not sources:
        raise SystemExit("no training sources: run the converters in training/grounding/sources/ first")
    model = fit.new_model()
    data = fit.prepare_sources(model, minilm.tokenizer(), sources, CACHE, with_eval=False)
    train = [e for d in data for e in d.train]
    print(f"training on {len(train)} pairs from {len(data)} sources, {args.epochs} epoch(s)")
    secs = fit.train_upper(model, train, epochs=args.epochs)
    meta = {"version": VERSION, "epochs": args.epochs, "pairs": len(train), "sources": sorted(sources),
            "fit_seconds": round(secs), **combiner_meta()}
    threshold = meta["threshold"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **trainable_state(model, meta))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, threshold {threshold}); "
          f"took {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
