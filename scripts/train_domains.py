"""Rebuild the sensitive-domain head (`gateway/risk/data/domain_head.npz`) from public sources.

    # the data: fetch the repositories training/domains/manifest.json names (the search tool's
    # `fetch`), into DIR as owner+name/ git directories; then
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/train_domains.py --mirrors DIR

What it does: every source of training/domains/sources.py read at its pinned commit and checked
with ../shared/contamination/check.py; every text embedded exactly as the gateway embeds it (its
windows, at the embedder's run-time precision); the head fitted with every source weighing the same,
its regularization, slope and offsets chosen on out-of-fold scores with whole sources held out
(training/domains/fit.py). Deterministic: the same data gives the same weights. Writes the manifest
(`training/domains/manifest.json`) beside the head.

Time on this project's 2-core machine (2026-12-06): 49 s to read the 38 sources and embed the 7,865
windows of their 6,209 texts (int8), 9 s to fit. `bench/domain_eval.py` measures the same recipe
leave-one-source-out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.risk.domains import HEAD_PATH  # noqa: E402
from gateway.risk.embeddings import Embedder  # noqa: E402
from training.domains import fit  # noqa: E402
from training.domains.sources import load, write_manifest  # noqa: E402

MANIFEST = ROOT / "training" / "domains" / "manifest.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirrors", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=HEAD_PATH)
    args = ap.parse_args(argv)
    started = time.time()
    sources = load(args.mirrors)
    embedder = Embedder(cache_size=0, batch_size=64)  # the gateway's precision: the head reads what it computes
    data = fit.embed(sources, embedder)
    embedded = time.time() - started
    head, chosen = fit.fit_head(data)
    head.meta.update({
        "trained": dt.date.today().isoformat(),
        "sources": {s.name: len(s.texts) for s in sources},
        "texts": int(len(data.label)),
        "windows": int(len(data.vectors)),
        "embedder_precision": embedder.precision,
        "chosen": chosen,
        "rebuild": "scripts/train_domains.py",
    })
    head.save(args.out)
    write_manifest(sources, MANIFEST)
    print(f"{len(data.label)} texts, {len(data.vectors)} windows from {len(sources)} sources; chosen {chosen}")
    print(f"embedded in {embedded:.0f} s, fitted in {time.time() - started - embedded:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
