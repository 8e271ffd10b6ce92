"""PII and secrets detection: Presidio's AnalyzerEngine in-process, made fast.

Where vanilla Presidio spends its time, and what this module does about it:

- spaCy runs its whole pipeline; here it runs only when a policy turns on NRP or dates, which its
  NER alone finds (`ner.py`), and otherwise a regex gives Presidio the tokens its context words
  need (`word_artifacts`). Names, places and organisations come from the learned tagger
  (`tagger.py`), one batched pass over all of a request's texts, and are made whole and followed
  across the request's texts by `names.py`. The pattern recognizers run first, and the values they
  find reach the tagger as one placeholder word each (fewer word pieces, the tagger's cost).
- Every recognizer runs on every text. A recognizer whose entity cannot occur (a card number in a
  text with fewer than 12 digits, an e-mail without "@") is skipped by a cheap gate on the text
  (`catalogue.py`).
- Presidio's phone recognizer runs `phonenumbers` once per region; ours is one regex pass plus
  context (see recognizers.py).
- Several texts (the fields of one request) go through spaCy as one batch (`nlp.pipe`-style), and
  long texts are cut into overlapping token windows so that NER cost stays linear and an entity on
  a window boundary is still seen whole by one window.
- Presidio's context enhancer looks words up in a list; we hand it a set.

Detection runs on each text's shadow (normalize.py: invisible characters dropped, look-alike
letters and foreign digits folded) and offsets are mapped back, so a zero-width space inside an
e-mail does not hide it. `structural=True` runs only the pattern recognizers (no NER, no tagger):
cheap enough for the extra windows the request inspection scans across field boundaries.
Overlapping detections are merged into one entity per stretch (`overlaps.py`).

`aanalyze` runs the work on a thread pool with a deadline, so a large prompt does not stall the
event loop, and any failure or timeout raises `PiiAnalysisError` for the caller to fail closed.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.predefined_recognizers import SpacyRecognizer
from spacy.language import Language
from spacy.tokens import Doc, Span

from gateway.pii.catalogue import GATES, recognizers_for
from gateway.pii.config import PiiPolicy
from gateway.pii.entities import Entity, PiiAnalysisError
from gateway.pii.names import propagate, whole_names
from gateway.pii.ner import NER_ENTITIES, ContextEnhancer, SlimSpacyEngine, load_nlp, ner_text, word_artifacts
from gateway.pii.normalize import Offsets, original_span, shadow
from gateway.pii.overlaps import resolve_overlaps
from gateway.pii.recognizers import policy_recognizers
from gateway.pii.tagger import ENTITY_OF, GROW, NameTagger, get_tagger
from gateway.pii.tagger import spans as tagged_spans

log = logging.getLogger("bulkhead.pii")

CHUNK_TOKENS = 512
CHUNK_OVERLAP = 32  # tokens two neighbouring windows share; entities longer than half of it are rare
CACHE_ENTRIES = 4096
_CACHE_KEY = secrets.token_bytes(32)  # per process: cache keys cannot be matched against guessed texts

_DIGITS = str.maketrans("", "", "0123456789")
TAGGER_ENTITIES = frozenset(ENTITY_OF.values())
_READ_WHOLE = NER_ENTITIES | {"ADDRESS"}  # what the tagger reads as written (see `_hard_spans`)
_UPPER = re.compile(r"[A-Z\u00c0-\u00de\u0391-\u03a9\u0410-\u042f]")


class PiiAnalyzer:
    """Detects the policy's entity types in texts. Thread-safe; build one per policy and reuse it."""

    def __init__(
        self,
        policy: PiiPolicy | None = None,
        *,
        nlp: Language | None = None,
        executor: ThreadPoolExecutor | None = None,
        tagger: NameTagger | None = None,
    ) -> None:
        self.policy = policy or PiiPolicy()
        self.nlp = nlp or load_nlp()
        self._ner = self.nlp.get_pipe("ner")
        active = self.policy.active_entities
        # Names, places and organisations come from the learned tagger; spaCy's NER runs only for
        # the types the tagger does not know (NRP, DATE_TIME), which the default policy leaves off.
        self.tagger_entities = frozenset(active & TAGGER_ENTITIES)
        self.tagger = (tagger or get_tagger()) if self.tagger_entities else None
        self.ner_entities = frozenset(active & NER_ENTITIES)
        self.spacy_entities = frozenset(self.ner_entities - TAGGER_ENTITIES)
        recognizers: list[EntityRecognizer] = []
        if self.spacy_entities:
            recognizers.append(SpacyRecognizer(supported_entities=sorted(self.spacy_entities)))
        for entity in sorted(active):
            recognizers.extend(recognizers_for(entity))
        recognizers.extend(policy_recognizers(self.policy.custom_recognizers))
        self.recognizers = recognizers
        self._engine = SlimSpacyEngine(self.nlp, self.ner_entities)
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
        self.engine = AnalyzerEngine(
            registry=registry,
            nlp_engine=self._engine,
            supported_languages=["en"],
            context_aware_enhancer=ContextEnhancer(context_prefix_count=6, context_suffix_count=2),
        )
        self.entities = sorted(active)
        # Presidio's results are kept down to the lowest threshold any zone uses, as the tagger's
        # below: a recall-first threshold for a structured type (UK_NHS without context) would
        # otherwise be cut here before `_finish` and the zones ever see it.
        self._min_threshold = min(
            [self.policy.keep_threshold(e) for e in self.entities] or [self.policy.score_threshold]
        )
        # The tagger's spans are decoded down to the lowest threshold any zone uses (the
        # recall-first external zone's); each zone keeps what reaches its own (transform.py).
        self._tag_threshold = min(
            [self.policy.keep_threshold(e) for e in self.tagger_entities] or [self.policy.score_threshold]
        )
        self._allow = {v.strip().lower() for v in self.policy.allow_list}
        self._executor = executor or _default_executor()
        self._cache: OrderedDict[bytes, tuple[Entity, ...]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- public API ---------------------------------------------------------------------------

    def analyze(self, texts: Sequence[str], *, structural: bool = False) -> list[list[Entity]]:
        """Entities per text, sorted and non-overlapping. Raises PiiAnalysisError on any failure.
        `structural`: pattern recognizers only (formats, checksums, secrets; no names or places)."""
        if not self.policy.enabled:
            return [[] for _ in texts]
        total = sum(len(t) for t in texts)
        if total > self.policy.max_chars:
            raise PiiAnalysisError(
                f"request text is {total} characters; the policy analyses at most {self.policy.max_chars}"
            )
        try:
            found = self._analyze(list(texts), structural)
            if "PERSON" in self.tagger_entities and not structural:
                found = propagate(texts, found)
            return found
        except PiiAnalysisError:
            raise
        except Exception as exc:  # never let an analyzer bug turn into a pass-through
            # The type only: exception messages (Presidio's among them) can quote the analysed text.
            log.error("PII analysis failed: %s", type(exc).__name__)
            raise PiiAnalysisError(f"PII analysis failed ({type(exc).__name__})") from None

    async def aanalyze(
        self, texts: Sequence[str], timeout: float | None = None, *, structural: bool = False
    ) -> list[list[Entity]]:
        """`analyze` on the thread pool, bounded by `timeout` (default: the policy's timeout_s)."""
        loop = asyncio.get_running_loop()
        limit = self.policy.timeout_s if timeout is None else timeout
        run = functools.partial(self.analyze, list(texts), structural=structural)
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._executor, run), limit)
        except TimeoutError:
            raise PiiAnalysisError(f"PII analysis did not finish within {limit:g}s", timeout=True) from None

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    # -- internals ----------------------------------------------------------------------------

    def _analyze(self, texts: list[str], structural: bool = False) -> list[list[Entity]]:
        """Texts seen recently (the system prompt and earlier turns that every chat request re-sends)
        come from a cache keyed by a keyed hash of the text; only entity offsets are kept, never text."""
        mode = b"s" if structural else b""
        keys = [
            hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16, key=_CACHE_KEY, salt=mode).digest()
            for t in texts
        ]
        out: list[list[Entity] | None] = [None] * len(texts)
        with self._cache_lock:
            for i, k in enumerate(keys):
                hit = self._cache.get(k)
                if hit is not None:
                    self._cache.move_to_end(k)
                    out[i] = list(hit)
        todo = [i for i, found in enumerate(out) if found is None]
        if todo:
            fresh = self._analyze_uncached([texts[i] for i in todo], structural)
            with self._cache_lock:
                for i, ents in zip(todo, fresh, strict=True):
                    out[i] = ents
                    self._cache[keys[i]] = tuple(ents)
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return out  # type: ignore[return-value]

    def _analyze_uncached(self, originals: list[str], structural: bool = False) -> list[list[Entity]]:
        shadows = [shadow(t) for t in originals]
        texts = [s for s, _ in shadows]
        digits = [len(t) - len(t.translate(_DIGITS)) for t in texts]
        wanted = [self._entities_for(t, d) for t, d in zip(texts, digits, strict=True)]
        if structural:
            wanted = [w - NER_ENTITIES for w in wanted]  # and so no name tagger either
        # Only texts that may hold what spaCy's NER alone finds (NRP and dates, which in its eyes
        # start with a capital letter) go through spaCy; the others are tokenized by a regex
        # (`word_artifacts`).
        need_ner = [
            bool(w & self.spacy_entities) and _UPPER.search(t) is not None
            for t, w in zip(texts, wanted, strict=True)
        ]
        # Texts with nothing to look for are not even tokenized.
        todo = [i for i, (t, w) in enumerate(zip(texts, wanted, strict=True)) if w and t.strip()]
        spacy_todo = [i for i in todo if need_ner[i]]
        # spaCy's vocabulary grows while it tokenizes; one thread in it at a time (the GIL allows no
        # parallel speed-up here anyway, measured).
        with _SPACY_LOCK:
            docs = dict(zip(spacy_todo, self._nlp_docs([texts[i] for i in spacy_todo]), strict=True))
        # Pattern recognizers first: what they find is masked for the tagger (see NameTagger.tag).
        results: dict[int, list[RecognizerResult]] = {}
        for i in todo:
            presidio_entities = sorted(wanted[i] - self.tagger_entities)
            artifacts = self._engine.artifacts(docs[i]) if i in docs else word_artifacts(texts[i])
            results[i] = self.engine.analyze(
                texts[i],
                language="en",
                entities=presidio_entities,
                score_threshold=self._min_threshold,
                nlp_artifacts=artifacts,
            ) if presidio_entities else []
        tag_todo = [i for i in todo if wanted[i] & self.tagger_entities]
        if tag_todo:
            masks = [self._hard_spans(texts[i], results[i]) for i in tag_todo]
            for i, tagged in zip(tag_todo, self.tagger.tag([texts[i] for i in tag_todo], masks), strict=True):
                results[i].extend(
                    RecognizerResult(s.type, s.start, s.end, s.score)
                    for s in tagged_spans(texts[i], tagged, self._tag_threshold, GROW)
                    if s.type in wanted[i]
                )
        out: list[list[Entity]] = [[] for _ in texts]
        for i in todo:
            out[i] = _to_original(self._finish(texts[i], results[i]), shadows[i][1])
        return out

    def _hard_spans(self, text: str, results: list[RecognizerResult]) -> list[tuple[int, int, str]]:
        """The pattern matches that `_finish` will trim names off (kept at their threshold, not
        allowed), merged where they overlap: what the tagger need not read. Not street addresses:
        their recognizer often covers the street but not the town and country lines after it, which
        read as names once the street before them is a placeholder (PERSON precision on the dev file
        0.911 -> 0.884 with them masked, 0.911 without)."""
        spans = sorted(
            (r.start, r.end, r.entity_type)
            for r in results
            if r.entity_type not in _READ_WHOLE
            and r.score >= self.policy.keep_threshold(r.entity_type)
            and not (self._allow and text[r.start : r.end].strip().lower() in self._allow)
        )
        merged: list[tuple[int, int, str]] = []
        for a, b, kind in spans:
            if merged and a < merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]), merged[-1][2])
            else:
                merged.append((a, b, kind))
        return merged

    def _entities_for(self, text: str, digits: int) -> set[str]:
        wanted = set()
        for entity in self.entities:
            if entity in NER_ENTITIES:
                wanted.add(entity)
                continue
            gate = GATES.get(entity)
            if gate is None or gate(text, digits):
                wanted.add(entity)
        return wanted

    def _nlp_docs(self, texts: list[str]) -> list[Doc]:
        """Tokenize every text and run NER over windows of them all, as one batch.

        A text longer than CHUNK_TOKENS is cut into windows that overlap by CHUNK_OVERLAP tokens.
        Each window owns the middle of its overlaps and keeps the entities that start there, so an
        entity on a boundary is seen whole by one window and reported once. Windows without a
        capital letter skip NER (code, logs, lower-case chatter)."""
        docs = [self.nlp.make_doc(ner_text(t)) for t in texts]
        # Per NER input: (text index, token offset, owned from, owned to); offset -1 = the whole text.
        targets: list[tuple[int, int, int, int]] = []
        inputs: list[Doc] = []
        for i, doc in enumerate(docs):
            n = len(doc)
            if n <= CHUNK_TOKENS:
                targets.append((i, -1, 0, n))
                inputs.append(doc)
                continue
            starts = list(range(0, max(n - CHUNK_OVERLAP, 1), CHUNK_TOKENS - CHUNK_OVERLAP))
            for k, a in enumerate(starts):
                b = min(a + CHUNK_TOKENS, n)
                span = doc[a:b]
                if _UPPER.search(span.text) is None:
                    continue
                own_from = 0 if k == 0 else a + CHUNK_OVERLAP // 2
                own_to = n if k == len(starts) - 1 else b - CHUNK_OVERLAP // 2
                targets.append((i, a, own_from, own_to))
                inputs.append(span.as_doc())
        if not inputs:
            return docs
        kept: dict[int, list[Span]] = {}
        for (i, offset, own_from, own_to), wdoc in zip(
            targets, self._ner.pipe(inputs, batch_size=64), strict=True
        ):
            if offset < 0:
                docs[i] = wdoc
                continue
            spans = kept.setdefault(i, [])
            for ent in wdoc.ents:
                start, end = ent.start + offset, ent.end + offset
                if own_from <= start < own_to and (not spans or start >= spans[-1].end):
                    spans.append(Span(docs[i], start, end, label=ent.label_))
        for i, spans in kept.items():
            docs[i].set_ents(spans)
        return docs

    def _finish(self, text: str, results: list[RecognizerResult]) -> list[Entity]:
        found = [Entity(r.entity_type, r.start, r.end, float(r.score)) for r in results if r.end > r.start]
        if "PERSON" in self.tagger_entities:
            found = whole_names(text, found)
        found = [e for e in found if e.score >= self.policy.keep_threshold(e.type)]
        if self._allow:
            found = [e for e in found if text[e.start : e.end].strip().lower() not in self._allow]
        return resolve_overlaps(_drop_soft_overlaps(found, text))


def _to_original(entities: list[Entity], offsets: Offsets) -> list[Entity]:
    """Entities found on a shadow, in the original text's offsets."""
    if offsets is None:
        return entities
    # Two entities from one expanded character ("ﬁ") would meet on it; resolve that as usual.
    return resolve_overlaps(
        [Entity(e.type, *original_span(offsets, e.start, e.end), e.score) for e in entities]
    )


def _drop_soft_overlaps(entities: list[Entity], text: str) -> list[Entity]:
    """A name or place guessed by the statistical model yields to an overlapping pattern match: it
    is trimmed to what lies outside the match ("Ana Dias <ana@x.org>" was one PERSON to the small
    model), and dropped when nothing is left (the city inside an ADDRESS)."""
    hard = [e for e in entities if e.type not in NER_ENTITIES]
    if not hard:
        return entities
    out = list(hard)
    for e in entities:
        if e.type not in NER_ENTITIES:
            continue
        start, end = e.start, e.end
        for h in hard:
            if h.start < end and start < h.end:
                # Keep the part before the pattern match ("Ana Dias <ana@x.org>" -> "Ana Dias"),
                # else the part after it.
                start, end = (start, h.start) if h.start > start else (h.end, end)
        while start < end and not text[start].isalnum():
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
        if end - start >= 2:
            out.append(Entity(e.type, start, end, e.score))
    return out


_SPACY_LOCK = threading.Lock()
_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _default_executor() -> ThreadPoolExecutor:
    # Eight threads: the tagger's passes are batched across them (gateway/batching.py), so under load
    # eight requests' windows share one pass instead of two passes queueing for two threads; the
    # Python around the passes is GIL-bound either way. Bounded still: a deeper pool would only turn
    # overload into timeouts later instead of sooner.
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pii")
        return _executor


_cache_lock = threading.Lock()
_analyzers: dict[str, PiiAnalyzer] = {}


def analyzer_for(policy: PiiPolicy) -> PiiAnalyzer:
    """One analyzer per distinct policy (tenant overlays share it when their `pii:` is equal)."""
    key = policy.fingerprint
    with _cache_lock:
        found = _analyzers.get(key)
        if found is None:
            if len(_analyzers) > 256:  # policies are reloaded; old ones must not pile up
                _analyzers.clear()
            found = _analyzers[key] = PiiAnalyzer(policy)
        return found
