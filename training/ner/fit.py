"""Fine-tuning the name tagger (gateway/pii/tagger.py), and reading BIO tags as entities.

Casing augmentation: each time a sentence is drawn it is shown as written, or with every word's
shape set to lower case (chat), or upper case, or without its punctuation. The vocabulary is
uncased, so only the shape input and the punctuation change; the model learns to find names from
the words around them as well as from a capital letter.
"""

from __future__ import annotations

import math
import random
import time

from gateway.pii.tagger import (
    LABELS,
    SHAPE_LOWER,
    SHAPE_NONE,
    SHAPE_UPPER,
    build_module,
    shape,
    tokenizer,
)

LABEL_ID = {label: i for i, label in enumerate(LABELS)}
# The longest sequence the model is shown, [CLS] and [SEP] included: longer than the tagger's
# inference window (tagger.WINDOW), so every position a window uses is trained on running text.
MAX_PIECES = 192
AUGMENT = (("as_written", 0.55), ("lower", 0.3), ("upper", 0.05), ("no_punct", 0.1))


def augment(tokens: list[str], tags: list[str], mode: str) -> tuple[list[str], list[str], list[int]]:
    """(tokens, tags, shapes) as shown to the model in `mode`."""
    if mode == "no_punct":
        kept = [(t, g) for t, g in zip(tokens, tags, strict=True) if g != "O" or any(c.isalnum() for c in t)]
        if kept:
            tokens, tags = [t for t, _ in kept], [g for _, g in kept]
    shapes = [shape(t) for t in tokens]
    if mode == "lower":
        shapes = [SHAPE_LOWER if s != SHAPE_NONE else s for s in shapes]
    elif mode == "upper":
        shapes = [SHAPE_UPPER if s != SHAPE_NONE else s for s in shapes]
    return tokens, tags, shapes


def encode(tok, tokens: list[str], tags: list[str], shapes: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Word pieces, their shapes, and labels on each word's first piece (-100 elsewhere), cut to MAX_PIECES."""
    enc = tok.encode(tokens, is_pretokenized=True, add_special_tokens=False)
    ids, wid = enc.ids[: MAX_PIECES - 2], enc.word_ids[: MAX_PIECES - 2]
    labels, piece_shapes, prev = [], [], None
    for w in wid:
        piece_shapes.append(shapes[w])
        labels.append(LABEL_ID[tags[w]] if w != prev else -100)
        prev = w
    return ids, piece_shapes, labels


def _batches(items: list, size: int, rng: random.Random) -> list[list]:
    """Batches of similar length (less padding), in random order."""
    order = sorted(range(len(items)), key=lambda i: (len(items[i][0]), rng.random()))
    chunks = [order[k : k + size] for k in range(0, len(order), size)]
    rng.shuffle(chunks)
    return [[items[i] for i in c] for c in chunks]


def _tensors(torch, batch):
    n = max(len(b[0]) for b in batch) + 2
    ids = torch.zeros((len(batch), n), dtype=torch.long)
    shapes = torch.zeros((len(batch), n), dtype=torch.long)
    att = torch.zeros((len(batch), n), dtype=torch.long)
    labels = torch.full((len(batch), n), -100, dtype=torch.long)
    for r, (p, s, lab) in enumerate(batch):
        ids[r, : len(p) + 2] = torch.tensor([101, *p, 102])
        shapes[r, 1 : len(p) + 1] = torch.tensor(s, dtype=torch.long)
        att[r, : len(p) + 2] = 1
        labels[r, 1 : len(p) + 1] = torch.tensor(lab, dtype=torch.long)
    return ids, shapes, att, labels


def fit(
    sentences: list[tuple[list[str], list[str]]],
    *,
    epochs: float = 1.0,
    batch: int = 32,
    lr: float = 1e-4,
    seed: int = 7,
    threads: int = 2,
    layers: int | None = None,
    log=print,
):
    """A fine-tuned tagger module (eval mode). `epochs` may be fractional (sentences drawn anew)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = random.Random(seed)
    tok = tokenizer()
    model = build_module(layers=layers)
    model.train()
    head = [p for n, p in model.named_parameters() if n.startswith(("head.", "shapes.")) and p.requires_grad]
    body = [p for n, p in model.named_parameters() if not n.startswith(("head.", "shapes.")) and p.requires_grad]
    opt = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head, "lr": lr * 10}], weight_decay=0.01)
    n_draw = int(len(sentences) * epochs)
    steps = math.ceil(n_draw / batch)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm))
    )
    modes, weights = zip(*AUGMENT, strict=True)
    drawn = [sentences[i % len(sentences)] for i in rng.sample(range(max(n_draw, len(sentences))), n_draw)] \
        if n_draw <= len(sentences) else [rng.choice(sentences) for _ in range(n_draw)]
    items = []
    for tokens, tags in drawn:
        mode = rng.choices(modes, weights)[0]
        items.append(encode(tok, *augment(tokens, tags, mode)))
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    started = time.time()
    for step, b in enumerate(_batches(items, batch, rng)):
        ids, shapes, att, labels = _tensors(torch, b)
        logits = model(ids, shapes, att)
        loss = loss_fn(logits.reshape(-1, len(LABELS)), labels.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0:
            rate = (step + 1) * batch / max(time.time() - started, 1e-6)
            log(f"  step {step}/{steps} loss {loss.item():.3f} ({rate:.0f} sentences/s)")
    model.eval()
    return model


def entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, end word) of each BIO entity."""
    out, cur = [], None
    for i, g in enumerate([*tags, "O"]):
        if cur and (g == "O" or g.startswith("B-") or g[2:] != cur[0]):
            out.append((cur[0], cur[1], i))
            cur = None
        if g != "O" and cur is None:
            cur = (g[2:], i)
    return out
