"""Window embeddings for the training records, exactly as the gateway computes them at run time
(`gateway.risk.prepare.windows` and the shared MiniLM embedder), cached on disk by window digest so
that a rerun, a new source or a leave-one-source-out fold embeds only what it has not seen.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from gateway.risk.embeddings import DIM, Embedder
from gateway.risk.prepare import windows
from training.injection.dataset import BUILD, Example


def cache_path(precision: str) -> Path:
    """One cache per embedder precision: int8 and fp32 vectors of the same window differ (cosine
    ~0.99), and a head is fitted on the vectors the gateway will compute."""
    return BUILD / f"window-embeddings-{precision}.npz"


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class WindowCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[bytes, np.ndarray] = {}
        if path.exists():
            with np.load(path) as z:
                for k, v in zip(z["keys"], z["vectors"], strict=True):
                    self.rows[k.tobytes()] = v

    def save(self) -> None:
        # (n, 16) bytes, not an "S16" array: numpy strips the trailing NULs of fixed-width byte strings
        keys = np.frombuffer(b"".join(self.rows), dtype=np.uint8).reshape(-1, 16)
        vectors = np.stack(list(self.rows.values())) if self.rows else np.zeros((0, DIM), np.float16)
        np.savez(self.path, keys=keys, vectors=vectors.astype(np.float16))

    def embed(self, texts: list[str], embedder: Embedder, every: int = 2048) -> None:
        todo = list({_key(t): t for t in texts if _key(t) not in self.rows}.items())
        started = time.time()
        for i in range(0, len(todo), every):
            part = todo[i : i + every]
            vectors = embedder.encode([t for _, t in part])
            for (k, _), v in zip(part, vectors, strict=True):
                self.rows[k] = v.astype(np.float16)
            self.save()
            done = i + len(part)
            rate = done / max(1e-9, time.time() - started)
            print(f"  embedded {done}/{len(todo)} windows ({rate:.0f}/s)", file=sys.stderr, flush=True)

    def get(self, text: str) -> np.ndarray:
        return self.rows[_key(text)].astype(np.float32)


def flat_windows(examples: list[Example], **window_kw) -> tuple[list[str], np.ndarray]:
    """(every example's windows as the gateway cuts them, in order; owner index (W,))."""
    wins = [windows(e.text, **window_kw) for e in examples]
    return [w for ws in wins for w in ws], np.repeat(np.arange(len(examples)), [len(ws) for ws in wins])


def featurize(examples: list[Example], embedder: Embedder | None = None, **window_kw) -> tuple[np.ndarray, np.ndarray]:
    """(window vectors (W, DIM), owner index (W,)): every example's windows, embedded."""
    flat, owner = flat_windows(examples, **window_kw)
    return embed_windows(flat, embedder), owner


def embed_windows(flat: list[str], embedder: Embedder | None = None) -> np.ndarray:
    """The windows' vectors (W, DIM), from the cache where it holds them."""
    embedder = embedder or Embedder(cache_size=0, batch_size=64)  # the gateway's precision (its env too)
    cache = WindowCache(cache_path(embedder.precision))
    missing = [w for w in flat if _key(w) not in cache.rows]
    if missing:
        cache.embed(missing, embedder)
    return np.stack([cache.get(w) for w in flat]) if flat else np.zeros((0, DIM), np.float32)
