"""Read each text once: normalize it for the lexicons and embed a bounded set of its windows.

Both the domain and the injection detectors work from the same `Prepared` value, so a request is
embedded once however many detectors look at it, and the embedding cost has a ceiling
(`max_chunks` windows per text) whatever the prompt's length. What an encoding in the text says
(base64, Morse, leetspeak: decode.py) is embedded as windows of its own, so an instruction is read
through its disguise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.risk.decode import decoded_views
from gateway.risk.embeddings import DIM, Embedder
from gateway.risk.text import chunks, normalize, spread

CHUNK_CHARS = 600
MAX_CHUNKS = 12


@dataclass(frozen=True, slots=True)
class Prepared:
    raw: str
    norm: str
    vectors: np.ndarray  # (n_windows, DIM), unit rows; (0, DIM) for an empty text or without an embedder
    role: str = "user"  # user, tool, context, assistant, system: where the text arrived


def windows(text: str, max_chunks: int = MAX_CHUNKS, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    """The windows the embedder reads for one text: its chunks (spread over a long text) and, when it
    hides an encoding, the decoded view's."""
    out = spread(chunks(text, chunk_chars), max_chunks)
    for view in decoded_views(text):
        out += spread(chunks(view, chunk_chars), max(1, max_chunks // 4))
    return out


def prepare(
    texts: Sequence[str | tuple[str, str]],
    embedder: Embedder | None,
    max_chunks: int = MAX_CHUNKS,
    chunk_chars: int = CHUNK_CHARS,
) -> list[Prepared]:
    """`texts`: plain strings (read as user text) or `(role, text)`. `embedder=None` skips the
    embeddings (lexicons only, when a policy turns them off)."""
    items = [(t if isinstance(t, tuple) else ("user", t)) for t in texts]
    wins = [windows(text, max_chunks, chunk_chars) for _, text in items]
    flat = [w for ws in wins for w in ws]
    empty = np.zeros((0, DIM), dtype=np.float32)
    matrix = embedder.encode(flat) if embedder is not None and flat else empty
    out: list[Prepared] = []
    start = 0
    for (role, text), ws in zip(items, wins, strict=True):
        vectors = matrix[start : start + len(ws)] if embedder is not None else empty
        start += len(ws)
        out.append(Prepared(raw=text, norm=normalize(text), vectors=vectors, role=role))
    return out
