"""Fitting the grounding verifier: the frozen layers' output once per pair, then the top layers and
the head per fold. Used by `scripts/train_grounding.py` (the shipped model) and
`bench/grounding_eval.py --loso` (one model per left-out source).

Recipe (the same for every fold and for the shipped model): per source, up to TRAIN_RECORDS records
(balanced between the labels as far as the source allows) give their labelled claim pairs, of which
up to PAIRS_PER_LABEL per label are kept, so that every source weighs about the same, plus up to
SYNTHETIC of its supported claims with one fact changed, as unsupported; EPOCHS passes
of AdamW (LR, linear warm-up and decay, batch BATCH, bf16 autocast on CPU), seed SEED.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import numpy as np
import torch

from gateway import minilm
from gateway.hallucination import verifier
from gateway.hallucination.verifier import Pair, batch_tensors, build_module
from training.grounding.dataset import Record, Scored, pairs_for, sample

SEED = 13
TRAIN_RECORDS = 1500
EVAL_RECORDS = 400
PAIRS_PER_LABEL = 500
SYNTHETIC = 250  # perturbed supported claims per source (`dataset.perturb`)
EPOCHS = 3
LR = 2e-4
HEAD_LR = 1e-3
BATCH = 32
WARMUP = 0.06


@dataclass
class Encoded:
    """A pair's frozen-layer output (fp16, its own length) and its label (-1: evaluation only)."""

    hidden: np.ndarray
    label: int
    first: int  # tokens of the first segment ([CLS] claim [SEP] question [SEP])
    match: list[int]


def new_model():
    torch.manual_seed(SEED)
    return build_module()


def lower_outputs(model, pairs: list[Pair], batch: int = 64) -> list[np.ndarray]:
    """The frozen layers' output for every pair, fp16, computed in bf16 (as the gateway runs on a
    CPU with bf16 units; the top layers learn on what they will see)."""
    out: list[np.ndarray | None] = [None] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for k in range(0, len(order), batch):
            idx = order[k : k + batch]
            ids, types, att, _ = batch_tensors([pairs[i] for i in idx])
            h = model.lower(ids, types, att).float().numpy().astype(np.float16)
            for r, i in enumerate(idx):
                out[i] = h[r, : len(pairs[i][0])]
    return out  # type: ignore[return-value]


def _batch(items: list[Encoded]):
    n = max(len(e.hidden) for e in items)
    x = np.zeros((len(items), n, minilm.HIDDEN), dtype=np.float32)
    att = torch.zeros((len(items), n), dtype=torch.long)
    first = torch.zeros((len(items), n), dtype=torch.long)
    match = torch.zeros((len(items), n), dtype=torch.long)
    for r, e in enumerate(items):
        x[r, : len(e.hidden)] = e.hidden
        att[r, : len(e.hidden)] = 1
        first[r, : e.first] = 1
        match[r, : len(e.match)] = torch.tensor(e.match)
    return torch.from_numpy(x), att, first, match


def encoded(hidden: np.ndarray, pair: Pair, label: int = -1) -> Encoded:
    return Encoded(hidden, label, pair[1].count(0), pair[2])


def train_upper(model, data: list[Encoded], *, epochs: int = EPOCHS, log=print) -> float:
    """Fine-tunes the model's top layers and head on `data` in place; returns seconds taken."""
    started = time.perf_counter()
    rng = random.Random(SEED)
    torch.manual_seed(SEED)
    params = [p for p in model.parameters() if p.requires_grad]
    # The head and the match embedding start from nothing; the layers from the package.
    head = [*model.head.parameters(), *model.match.parameters()]
    body = [p for p in params if all(p is not h for h in head)]
    opt = torch.optim.AdamW([{"params": body, "lr": LR}, {"params": head, "lr": HEAD_LR}], weight_decay=0.01)
    # Batches of similar length (sorted within shuffled blocks): far less padding.
    steps_per_epoch = math.ceil(len(data) / BATCH)
    total = steps_per_epoch * epochs
    warm = max(1, int(WARMUP * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    step = 0
    for epoch in range(epochs):
        idx = list(range(len(data)))
        rng.shuffle(idx)
        blocks = [sorted(idx[k : k + BATCH * 20], key=lambda i: len(data[i].hidden))
                  for k in range(0, len(idx), BATCH * 20)]
        batches = [b[k : k + BATCH] for b in blocks for k in range(0, len(b), BATCH)]
        rng.shuffle(batches)
        running = 0.0
        for b in batches:
            y = torch.tensor([float(data[i].label) for i in b])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model.upper(*_batch([data[i] for i in b]))
            loss = loss_fn(logits.float(), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
        log(f"  epoch {epoch + 1}/{epochs}: {len(batches)} batches, loss ~{running:.3f}, "
            f"{time.perf_counter() - started:.0f} s")
    model.eval()
    return time.perf_counter() - started


def score_upper(model, items: list[Encoded], batch: int = 64) -> np.ndarray:
    out = np.zeros(len(items))
    order = sorted(range(len(items)), key=lambda i: len(items[i].hidden))
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for k in range(0, len(order), batch):
            idx = order[k : k + batch]
            out[idx] = torch.sigmoid(model.upper(*_batch([items[i] for i in idx])).float()).numpy()
    return out


def upper_state(model) -> dict:
    """A copy of what training changes (the frozen part never does), to start each fold from."""
    return {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}


def restore(model, state: dict) -> None:
    model.load_state_dict(state, strict=False)  # copies the values in: `state` stays as it was


def training_pairs(scored: list[Scored], seed: int = SEED) -> list[tuple[Pair, int]]:
    """Up to PAIRS_PER_LABEL labelled pairs per label of one source's scored records."""
    rng = random.Random(seed)
    by_label: dict[int, list] = {0: [], 1: []}
    for s in scored:
        for pair, label in s.train:
            by_label[label].append((pair, label))
    out = []
    for label in (0, 1):
        items = by_label[label]
        rng.shuffle(items)
        out += items[:PAIRS_PER_LABEL]
    synthetic = [p for s in scored for p in s.synthetic]
    rng.shuffle(synthetic)
    return out + [(p, 0) for p in synthetic[:SYNTHETIC]]


def prepare(tok, records: list[Record], n: int, seed: int = SEED) -> list[Scored]:
    return [pairs_for(tok, r) for r in sample(records, n, seed)]


def answer_scores(scored: Scored, probs: np.ndarray) -> float:
    """An answer is as weak as its weakest claim; a claim as strong as its best chunk. An answer
    with no claim asserts nothing: 1."""
    if scored.n_claims == 0:
        return 1.0
    best = np.zeros(scored.n_claims)
    for i, p in zip(scored.owner, probs, strict=True):
        best[i] = max(best[i], p)
    return float(best.min())


@dataclass
class SourceData:
    """One source, ready for folds: its training pairs' frozen outputs, and its evaluation records
    with their pairs' frozen outputs."""

    name: str
    train: list[Encoded]
    eval_records: list[Scored]
    eval_pairs: list[Encoded]


def _cached_lower(model, pairs, cache_dir, name: str) -> list[np.ndarray]:
    """lower_outputs, kept on disk by a hash of the pairs (the folds, the shipped fit and reruns
    share them)."""
    import hashlib  # only here: the cache key
    import json

    # the frozen depth is in the key: the same pairs through another number of layers is another output
    key = hashlib.sha256(json.dumps([verifier.FROZEN, [p[:2] for p in pairs]]).encode()).hexdigest()[:16]
    path = cache_dir / f"{name}-{key}.npz"
    if path.exists():
        with np.load(path) as f:
            flat, lengths = f["flat"], f["lengths"]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return [flat[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]
    out = lower_outputs(model, pairs)
    cache_dir.mkdir(parents=True, exist_ok=True)
    flat = np.concatenate(out) if out else np.zeros((0, minilm.HIDDEN), dtype=np.float16)
    np.savez(path, flat=flat, lengths=np.array([len(h) for h in out]))
    return out


def prepare_sources(model, tok, sources: dict[str, list[Record]], cache_dir, *, with_eval: bool = True,
                    log=print) -> list[SourceData]:
    out = []
    for name, records in sources.items():
        started = time.perf_counter()
        train = training_pairs(prepare(tok, records, TRAIN_RECORDS))
        hidden = _cached_lower(model, [p for p, _ in train], cache_dir, f"{name}-train")
        items = [encoded(h, p, label) for h, (p, label) in zip(hidden, train, strict=True)]
        scored, eval_items = [], []
        if with_eval:
            scored = prepare(tok, records, EVAL_RECORDS, seed=SEED + 1)
            pairs = [p for s in scored for p in s.eval]
            hidden = _cached_lower(model, pairs, cache_dir, f"{name}-eval")
            eval_items = [encoded(h, p) for h, p in zip(hidden, pairs, strict=True)]
        out.append(SourceData(name, items, scored, eval_items))
        log(f"{name}: {len(records)} records, {len(items)} training pairs "
            f"({sum(e.label for e in items)} supported), {len(scored)} evaluation records, "
            f"{len(eval_items)} evaluation pairs ({time.perf_counter() - started:.0f} s)")
    return out


def record_scores(source: SourceData, probs: np.ndarray) -> np.ndarray:
    """Answer scores of a source's evaluation records from its evaluation pairs' probabilities."""
    out, k = [], 0
    for s in source.eval_records:
        out.append(answer_scores(s, probs[k : k + len(s.eval)]))
        k += len(s.eval)
    return np.array(out)
