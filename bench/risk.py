"""What the risk stage costs per request, and how often it trips a domain on ordinary prompts.

Times `RiskEngine.assess` (normalization, chunking, embedding, domain and injection scoring, tier rules)
on real prompts: the records of `injection-dev.jsonl` (benign tasks, median 129 characters; attacks,
median 1,553) and the authored benign set. The embedding cache is cleared before every call, so the
figures are for unseen text; a repeated prompt costs only the lexicons and the heads (reported
separately). Then the injection detector alone on 1,000-character segments.
Torch runs with `--threads` intra-op threads (1 = the cost on one core).

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/risk.py
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/risk.py --requests 200 --threads 2
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEV = Path(__file__).resolve().parents[2] / "shared" / "evals" / "injection-dev.jsonl"  # ../shared
SCARY = ROOT / "tests/risk/data/benign_scary.jsonl"


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="timed requests per slice")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dev", type=Path, default=DEV)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from gateway.risk.assess import RiskEngine
    from gateway.risk.config import RiskPolicy
    from gateway.risk.embeddings import get_embedder

    embedder = get_embedder()
    engine = RiskEngine(embedder)
    policy = RiskPolicy()
    t0 = time.perf_counter()
    engine.warm_up(policy)
    print(
        f"warm-up (load MiniLM, embed the domain exemplars): {time.perf_counter() - t0:.2f}s; "
        f"torch threads {args.threads}"
    )

    rows = load(args.dev)
    rng = random.Random(7)
    slices = {
        "benign tasks (dev)": [r["text"] for r in rows if r["label"] == "benign"],
        "attacks (dev)": [r["text"] for r in rows if r["label"] == "attack"],
        "all dev records": [r["text"] for r in rows],
        "benign, scary-sounding": [r["text"] for r in load(SCARY)],
    }
    print(
        f"\n{'slice':<26}{'n':>5}{'chars p50':>10}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
        "   (cache cleared per call)"
    )
    for name, texts in slices.items():
        sample = [rng.choice(texts) for _ in range(args.requests)]
        times = []
        for text in sample:
            embedder.cache_clear()
            t = time.perf_counter()
            engine.assess([text], {"PERSON": 1}, 0, "internal", policy)
            times.append((time.perf_counter() - t) * 1000)
        chars = statistics.median(len(t) for t in sample)
        print(
            f"{name:<26}{len(sample):>5}{chars:>10.0f}{pct(times, 50):>9.1f}{pct(times, 99):>9.1f}"
            f"{statistics.fmean(times):>9.1f}"
        )
    for label, pol in (("repeat prompt (cache hit)", policy),):
        sample = [rng.choice(slices["all dev records"]) for _ in range(args.requests)]
        for text in sample:  # fill the cache
            engine.assess([text], {}, 0, None, pol)
        times = []
        for text in sample:
            t = time.perf_counter()
            engine.assess([text], {}, 0, None, pol)
            times.append((time.perf_counter() - t) * 1000)
        print(
            f"{label:<26}{len(sample):>5}{statistics.median(len(t) for t in sample):>10.0f}"
            f"{pct(times, 50):>9.1f}{pct(times, 99):>9.1f}{statistics.fmean(times):>9.1f}"
        )

    # The injection detector on one 1,000-character segment: the shared embedding of its windows
    # (which the domain detector reads too) and the head over them (its own cost).
    from gateway.risk.prepare import prepare

    detector = engine._injection
    joined = " ".join(slices["all dev records"])
    segments = [joined[i : i + 1000] for i in range(0, min(len(joined), 1000 * args.requests), 1000)]
    embed_ms, head_ms = [], []
    for seg in segments:
        embedder.cache_clear()
        t = time.perf_counter()
        (p,) = prepare([("tool", seg)], embedder)
        t1 = time.perf_counter()
        detector.score(p)
        t2 = time.perf_counter()
        embed_ms.append((t1 - t) * 1000)
        head_ms.append((t2 - t1) * 1000)
    print(f"\ninjection, {len(segments)} segments of 1,000 characters: embedding p50 {pct(embed_ms, 50):.1f} ms "
          f"p99 {pct(embed_ms, 99):.1f} ms (shared with the domain detector); head p50 {pct(head_ms, 50):.3f} ms "
          f"p99 {pct(head_ms, 99):.3f} ms")

    # How often ordinary prompts trip a domain (Self-Instruct tasks; some truly are about money or law).
    benign = slices["benign tasks (dev)"]
    hits: dict[str, int] = {}
    for text in benign:
        r = engine.assess([text], {}, 0, None, policy)
        for d in r.domains:
            hits[d] = hits.get(d, 0) + 1
    trip = sum(1 for t in benign if engine.assess([t], {}, 0, None, policy).domains)
    print(
        f"\ndomains on the {len(benign)} benign dev tasks: {trip} tripped any ({trip / len(benign):.1%}); "
        f"by domain {dict(sorted(hits.items()))} "
        "(Self-Instruct holds real finance/legal/code tasks, so not all "
        f"are false)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
