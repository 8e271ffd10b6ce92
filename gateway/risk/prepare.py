"""Read each text once: normalize it for the patterns and embed a bounded set of its chunks.

Both the domain and the injection detectors work from the same `Prepared` value, so a request is
embedded once however many detectors look at it, and the embedding cost has a ceiling
(`max_chunks` windows per text) whatever the prompt's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.risk.embeddings import DIM, Embedder
from gateway.risk.text import chunks, normalize, spread

CHUNK_CHARS = 600
MAX_CHUNKS = 12


@dataclass(frozen=True, slots=True)
class Prepared:
    raw: str
    norm: str
    vectors: np.ndarray  # (n_chunks, DIM), unit rows; (0, DIM) for an empty text


def prepare(
    texts: Sequence[str],
    embedder: Embedder | None,
    max_chunks: int = MAX_CHUNKS,
    chunk_chars: int = CHUNK_CHARS,
) -> list[Prepared]:
    """`embedder=None` skips the embeddings (pattern-only scoring, used when a policy turns them off)."""
    windows = [spread(chunks(t, chunk_chars), max_chunks) for t in texts]
    flat = [w for ws in windows for w in ws]
    empty = np.zeros((0, DIM), dtype=np.float32)
    matrix = embedder.encode(flat) if embedder is not None and flat else empty
    out: list[Prepared] = []
    start = 0
    for text, ws in zip(texts, windows, strict=True):
        vectors = matrix[start : start + len(ws)] if embedder is not None else empty
        start += len(ws)
        out.append(Prepared(raw=text, norm=normalize(text), vectors=vectors))
    return out
