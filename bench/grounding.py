"""Latency of the grounding check: a 1,000-character answer against 4,000 characters of context.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/grounding.py [--runs N] [--threads 1]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/grounding.py --geometry 2x80,1x48,1x32

Answers and contexts are cut from the converted sources (`training/grounding/build/`, else the dev
file): each context is 4,000 characters of a document, each answer 1,000 characters of sentences
taken from elsewhere in it and from another document (so that some claims are supported and some
not, as in real answers). Printed: p50 / p99 per call, on `--threads` torch threads, with the
context's chunks cached (the same documents asked about again) and uncached (a new context every
call); the content-word overlap baseline beside it, in the same process. The first call (model load
and the precision probe) is excluded. Timings depend on the machine and its load.

`--geometry KxN,...`: the same model comparing each claim with K chunks of up to N word pieces
(the shipped geometry is `verifier.TOP_CHUNKS`x`verifier.CHUNK`), the geometries interleaved call by
call on uncached contexts, with each one's time as a ratio to the first's. What a geometry loses is
`bench/grounding_eval.py --geometry` (fitted figures) and, for the one shipped, `--loso`.
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

from gateway.hallucination.claims import split_claims  # noqa: E402
from gateway.hallucination.grounding import GroundingCheck  # noqa: E402
from gateway.hallucination.overlap import overlap  # noqa: E402

BUILD = ROOT / "training" / "grounding" / "build"
DEV = ROOT.parent / "shared" / "evals" / "grounding-dev.jsonl"


def documents() -> list[str]:
    texts = []
    for path in sorted(BUILD.glob("*.jsonl")) or [DEV]:
        for line in path.read_text(encoding="utf-8").splitlines():
            texts.append(json.loads(line)["context"])
    seen, out = set(), []
    for t in texts:
        if len(t) >= 5000 and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def cases(n: int, seed: int = 7) -> list[tuple[str, str]]:
    docs = documents()
    if len(docs) < 2:
        raise SystemExit("no documents of 5,000+ characters: run the converters in training/grounding/sources/")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        doc, other = rng.sample(docs, 2)
        context = doc[:4000]
        pool = [c.text for c in split_claims(doc[4000:] or doc)] + [c.text for c in split_claims(other)][:5]
        rng.shuffle(pool)
        answer = ""
        for sentence in pool:
            if len(answer) + len(sentence) > 1000:
                break
            answer += sentence + " "
        out.append((context, answer.strip() or pool[0][:1000]))
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def parse_geometry(text: str) -> tuple[int, int]:
    k, _, n = text.strip().partition("x")
    return int(k), int(n)


def geometries(check: GroundingCheck, work: list[tuple[str, str]], shapes: list[tuple[int, int]]) -> None:
    v = check.verifier
    times: dict[tuple[int, int], list[float]] = {g: [] for g in shapes}
    pairs: dict[tuple[int, int], list[int]] = {g: [] for g in shapes}
    for context, answer in work:
        for g in shapes:  # interleaved, so that the machine's drift falls on every geometry alike
            v.set_geometry(chunk=g[1], top_chunks=g[0])  # drops the cached contexts too
            started = time.perf_counter()
            result = check.score(context, answer)
            times[g].append((time.perf_counter() - started) * 1000)
            pairs[g].append(result.detail.get("pairs", 0))
    base = statistics.median(times[shapes[0]])
    for g in shapes:
        print(f"{g[0]} chunk(s) x {g[1]:>3} pieces  p50 {pct(times[g], 50):6.1f} ms  p99 {pct(times[g], 99):6.1f} ms  "
              f"({statistics.median(times[g]) / base:.2f}x the first; pairs {statistics.median(pairs[g]):.0f} "
              f"per answer; {v.precision})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--geometry", help="compare chunk geometries, e.g. 2x80,1x48 (chunks x word pieces)")
    args = ap.parse_args()
    import torch  # only to pin the thread count

    torch.set_num_threads(args.threads)
    check = GroundingCheck()
    work = cases(args.runs)
    check.score(*work[0])  # load, probe, first-call costs
    if args.geometry:
        geometries(check, work, [parse_geometry(g) for g in args.geometry.split(",")])
        return
    results = {}
    for mode in ("uncached", "cached"):
        times, claims, pairs = [], [], []
        for context, answer in work:
            if mode == "uncached":
                check.verifier._contexts.clear()
            else:
                check.verifier.chunks([context])  # as if the document had been asked about before
            started = time.perf_counter()
            result = check.score(context, answer)
            times.append((time.perf_counter() - started) * 1000)
            claims.append(result.detail.get("claims", 0))
            pairs.append(result.detail.get("pairs", 0))
        results[mode] = times
        print(f"verifier, context {mode:<9} p50 {pct(times, 50):6.1f} ms  p99 {pct(times, 99):6.1f} ms  "
              f"(claims {statistics.median(claims):.0f}, pairs {statistics.median(pairs):.0f} per answer; "
              f"{args.threads} thread(s), {check.verifier.precision})")
    times = []
    for context, answer in work:
        started = time.perf_counter()
        overlap(context, answer)
        times.append((time.perf_counter() - started) * 1000)
    print(f"overlap baseline         p50 {pct(times, 50):6.2f} ms  p99 {pct(times, 99):6.2f} ms")
    print(f"answers {statistics.median(len(a) for _, a in work):.0f} chars, contexts "
          f"{statistics.median(len(c) for c, _ in work):.0f} chars, {len(work)} calls per row")


if __name__ == "__main__":
    main()
