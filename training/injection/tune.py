"""Fine-tune MiniLM's top layers for injection, over cached lower-layer states.

The sentence embedder's lower `FROZEN` layers are kept as the package ships them; the layers above
are copied and fine-tuned as a second branch with a linear read-out (multiple-instance: a text's
logit is its worst window's). Only the branch's inputs (the frozen layers' output for every
window, fp16, at most `MAX_PIECES` word pieces) are computed once and cached on disk, so a fold
costs the top layers' forward and backward passes only.

Every source weighs the same and, inside a source, attacks and benign texts weigh the same in total
(`fit.weights`): training texts are drawn with those weights, not all of them, so that a fold fits
a session on two cores. On the 2-core EPYC (2026-12-06): the lower layers over 33,318 windows
took 2 min once (3.3 GB); a fit of 15,000 drawn texts, 6 min (~43 texts/s).
"""

from __future__ import annotations

import hashlib
import sys
import time

import numpy as np
import torch

from gateway import minilm
from gateway.risk.embeddings import DIM, LAYERS, build_module, cut
from gateway.risk.embeddings import MAX_PIECES as EMBEDDER_PIECES
from gateway.risk.injection import ROLES, role_index
from training.injection.dataset import BUILD, Example
from training.injection.fit import weights

FROZEN = 4
MAX_PIECES = 128  # 35% of the 600-character windows reach it; the lower layers read up to 256
SCALE = 10.0  # the read-out is of a unit vector: the scale lets its logit span about +-10


def _digest(texts: list[str]) -> str:
    h = hashlib.blake2b(digest_size=8)
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def lower_module(frozen: int = FROZEN):
    """The sentence embedder's module (`embeddings.build_module`, the package's weights) run up to
    its lower `frozen` layers: (ids, attention) -> token states."""
    full = build_module()

    class Lower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.full = full

        def forward(self, ids, attention):
            f, n = self.full, ids.shape[1]
            x = f.ln(f.words(ids) + f.positions.weight[:n] + f.types.weight[0])
            mask = minilm.key_mask(attention, x.dtype)
            for layer in f.layers[:frozen]:
                x = layer(x, mask)
            return x

    return Lower().eval()


def pieces(texts: list[str]) -> list[list[int]]:
    """Each window's word pieces as the embedder reads them (`embeddings.cut`)."""
    tok = minilm.tokenizer()
    return [cut(tok.encode(t).ids) for t in texts]


def lower_states(flat: list[str], frozen: int = FROZEN, max_pieces: int = MAX_PIECES,
                 batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(states (W, max_pieces, DIM) fp16, lengths (W,)), cached in build/ by the windows' digest.

    As a branch inside the embedder's own pass would read them: the lower layers read the whole
    window (up to 256 pieces) and the branch takes the first `max_pieces` positions of their output.
    (Until 2026-12-07 windows were cut to `max_pieces` before the lower layers, which a branch sharing
    the embedder's pass never sees: it moved a long window's logit.)"""
    path = BUILD / f"lower-states-{frozen}-{max_pieces}-of-{EMBEDDER_PIECES}-{_digest(flat)}.npy"
    lens_path = path.with_suffix(".lens.npy")
    ids = pieces(flat)
    full = np.array([len(p) for p in ids], dtype=np.int32)
    lens = np.minimum(full, max_pieces)
    if path.exists() and lens_path.exists():
        return np.load(path, mmap_mode="r"), np.load(lens_path)
    model = lower_module(frozen)
    out = np.lib.format.open_memmap(path.with_suffix(".part.npy"), mode="w+", dtype=np.float16,
                                    shape=(len(flat), max_pieces, DIM))
    order = np.argsort(full, kind="stable")
    started = time.time()
    with torch.inference_mode():
        for k in range(0, len(order), batch):
            part = order[k : k + batch]
            x, a = minilm.padded([ids[i] for i in part])
            states = model(torch.from_numpy(x), torch.from_numpy(a))[:, :max_pieces]
            out[part, : states.shape[1]] = states.numpy().astype(np.float16)
            if (k // batch) % 50 == 0:
                print(f"  lower states {k + len(part)}/{len(flat)} ({(k + len(part)) / (time.time() - started):.0f}/s)",
                      file=sys.stderr, flush=True)
    out.flush()
    del out
    path.with_suffix(".part.npy").rename(path)
    np.save(lens_path, lens)
    return np.load(path, mmap_mode="r"), lens


class Branch(torch.nn.Module):
    """The fine-tuned top layers and a linear read-out of their mean-pooled output and the role."""

    def __init__(self, frozen: int = FROZEN) -> None:
        super().__init__()
        Layer = minilm.layer_class()
        self.frozen = frozen
        self.layers = torch.nn.ModuleList(Layer() for _ in range(LAYERS - frozen))
        self.read = torch.nn.Linear(DIM, 1)
        self.role_bias = torch.nn.Parameter(torch.zeros(len(ROLES)))
        base = minilm.base_weights(LAYERS)
        state = {}
        for j, i in enumerate(range(frozen, LAYERS)):
            state.update({k.replace(f"layers.{i}.", f"layers.{j}.", 1): v
                          for k, v in minilm.layer_state(base, i).items()})
        minilm.load_state(self, state)

    def forward(self, x, attention, role):
        mask = minilm.key_mask(attention, x.dtype)
        for layer in self.layers:
            x = layer(x, mask)
        keep = attention.unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return self.read(pooled).squeeze(-1) * SCALE + self.role_bias[role]


def _batch(states, lens, rows: np.ndarray):
    n = int(lens[rows].max())
    x = torch.from_numpy(np.asarray(states[np.sort(rows)][:, :n], dtype=np.float32))
    order = np.argsort(np.argsort(rows))  # states were read in sorted order
    x = x[torch.from_numpy(order)]
    a = torch.from_numpy((np.arange(n)[None, :] < lens[rows][:, None]).astype(np.int64))
    return x, a


def fit_branch(examples: list[Example], owner: np.ndarray, states, lens, train: np.ndarray, *, draws: int = 6000,
               batch: int = 16, lr: float = 4e-5, seed: int = 0, max_windows: int = 4, log: bool = True) -> Branch:
    """Fit on `draws` training texts drawn with the sources' weights (with replacement)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    w = weights([examples[i] for i in train]).astype(np.float64)
    picks = train[rng.choice(len(train), size=draws, p=w / w.sum())]
    by_text = _windows_of(owner, len(examples))
    model = Branch()
    model.train()
    head_params = [model.read.weight, model.read.bias, model.role_bias]
    body = [p for n, p in model.named_parameters() if n.startswith("layers.")]
    opt = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head_params, "lr": lr * 25}], weight_decay=0.01)
    steps = (draws + batch - 1) // batch
    # linear warm-up over the first 6% of the steps, then linear decay to zero
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * max(0.0, 1 - s / steps))
    started = time.time()
    for s in range(steps):
        texts = picks[s * batch : (s + 1) * batch]
        rows, seg = [], []
        for j, t in enumerate(texts):
            ws = by_text[t]
            if len(ws) > max_windows:
                ws = rng.choice(ws, max_windows, replace=False)
            rows.extend(ws)
            seg.extend([j] * len(ws))
        rows = np.array(rows)
        x, a = _batch(states, lens, rows)
        role = torch.tensor([role_index(examples[owner[r]].role) for r in rows])
        z = model(x, a, role)
        seg_t = torch.tensor(seg)
        text_z = torch.full((len(texts),), -1e4).scatter_reduce(0, seg_t, z, reduce="amax")
        y = torch.tensor([float(examples[t].attack) for t in texts])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(text_z, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log and s % 100 == 0:
            rate = (s + 1) * batch / (time.time() - started)
            print(f"    step {s}/{steps} loss {loss.item():.3f} ({rate:.1f} texts/s)", file=sys.stderr, flush=True)
    return model.eval()


def _windows_of(owner: np.ndarray, n: int) -> list[np.ndarray]:
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(n)]


def branch_logits(model: Branch, examples: list[Example], owner: np.ndarray, states, lens,
                  texts: np.ndarray, batch: int = 64) -> np.ndarray:
    """Each text's logit: its worst window's."""
    keep = np.isin(owner, texts)
    rows = np.nonzero(keep)[0]
    rows = rows[np.argsort(lens[rows], kind="stable")]
    z = np.empty(len(owner), dtype=np.float64)
    with torch.inference_mode():
        for k in range(0, len(rows), batch):
            part = rows[k : k + batch]
            x, a = _batch(states, lens, part)
            role = torch.tensor([role_index(examples[owner[r]].role) for r in part])
            z[part] = model(x, a, role).numpy()
    out = np.full(len(examples), -np.inf)
    np.maximum.at(out, owner[rows], z[rows])
    return out[texts]
