"""What one claim of an answer does that its context does not: the grounding check's claim features.

`claim_evidence(index, claim, question_stems)` lines the claim up with the context sentences that
share the most of its (idf-weighted) content words and numbers (`ContextIndex.align`) and measures,
as one value per `CLAIM_FEATURES` name:

- novelty: content words (stemmed, so "increased"/"increase" match) absent from the whole context,
  absent from the context but present in the question, and present in the context but not in the
  aligned sentences;
- numbers, dates and times (read by `notation.py`, so that notations compare equal) and currencies
  absent from the context, or present but not in the aligned sentences; words a context's notation
  implies ("2024-03-03": "March", "CEO": "chief executive officer") and its compounds joined
  ("e-mail": "email") count as the context's, and so do British spellings of American ones;
- capitalised names absent from the context ("Chinese" where it says "China" is not one);
- pairs of words (and numbers) that never occur near each other in any context sentence: a swapped
  or recombined fact made of known words;
- negation the context does not make ("did not approve" when the context only says "approved"), or
  that denies what the aligned sentences state, and antonym flips ("decreased" where the aligned
  sentence says "increased"; "dysfunctional"/"functional"), from `opposites.py`;
- paraphrase: how many of the novel words have a WordNet relative in the context, one step or two
  away (`lexicon.py`): a faithful summary rewords ("recovered" for "recaptured"), a changed fact
  brings in a word with no such relative ("borrowed");
- a lone swap: the claim's words are all in its aligned sentences but one, and that one is related to
  nothing there ("resigned" where the context says "spoke");
- anchored flips and swaps: a word whose neighbours stand next to its antonym in an aligned sentence
  more closely than next to the word itself ("revenue decreased 5%" for "revenue increased 5%"), and
  a word or number standing between the same two neighbours as a different one there ("opened in
  2019 in Ohio" for "opened in 2020 in Ohio"): the claim restating a sentence with one thing changed;
- the cosine similarity of the claim's embedding to its aligned sentences, left NaN here and filled
  in by `GroundingCheck` when it embeds.

Offsets of the words that count against the claim are kept as answer offsets, never the words.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from gateway.hallucination.claims import Claim
from gateway.hallucination.context_index import (
    ContextIndex,
    item_pairs,
    item_sequence,
    neighbours,
    surface_items,
)
from gateway.hallucination.implied import currency_marks
from gateway.hallucination.lexicon import get_lexicon
from gateway.hallucination.notation import Numbers, find_numbers
from gateway.hallucination.opposites import class_mates, content_antonyms, hand_antonyms
from gateway.hallucination.stems import stem
from gateway.hallucination.tokens import (
    HEDGES,
    NEG_PREFIXES,
    SPOKEN_FILLERS,
    Token,
    joined_stems,
    negation_scopes,
    tokenize,
)

CLAIM_FEATURES = (
    "n_content",  # distinct content stems in the claim
    "novel",  # content stems absent from the whole context
    "novel_frac",
    "novel_in_question",  # absent from the context but present in the question
    "novel_cap",  # capitalised words absent from the context
    "class_novel",  # a member of a closed class ("weeks", "green") absent from the context, where the
    # aligned sentences name another member ("days", "blue"): an invented value, decisive like a number
    "local_novel",  # in the context but not in the claim's aligned sentences
    "local_frac",
    "num",  # numbers in the claim
    "num_novel",  # numbers absent from the context
    "num_local",  # in the context but not in the aligned sentences
    "pair_novel",  # pairs of known content words never seen together in one context sentence
    "pair_frac",
    "num_pair_novel",  # novel pairs with a number in them: a known number next to other words
    "cap_local",  # capitalised words in the context but not in the aligned sentences
    "neg_added",  # negations beyond those of the aligned sentences
    "neg_unsupported",  # the claim negates words that the context has but never negates
    "neg_dropped",  # the aligned sentences negate a word that the claim states without negation
    "neg_contradicts",  # the claim negates words the aligned sentences state without negation
    "lone_swap",  # 1 when one word replaces another: the rest is in the aligned sentences, and the one
    # word is new to the context, not a name, and has no WordNet relative there
    "antonym",  # antonym (hand list or WordNet) of an aligned word, the word itself not aligned
    "prefix_flip",  # "dysfunctional" for the context's "functional", or the other way round
    "flip_anchored",  # an antonym flip whose neighbours stand next to the antonym in an aligned sentence
    "swap_word",  # a word between two neighbours that enclose another word in an aligned sentence
    "swap_number",  # the same for a number
    "hedge",  # quantifier or hedge ("only", "precisely", "all") absent from the aligned sentences
    "novel_syn",  # novel words with a WordNet synonym (or closely linked word) in the context
    "novel_syn2",  # novel words whose nearest WordNet relative in the context is two steps away
    "emb",  # best cosine of the claim's embedding to its aligned sentences (NaN: not computed)
)
FEATURE_INDEX = {name: i for i, name in enumerate(CLAIM_FEATURES)}
_F = FEATURE_INDEX  # the short name for the many lookups below


@dataclass(slots=True)
class ClaimEvidence:
    claim: Claim
    values: np.ndarray  # one value per CLAIM_FEATURES
    aligned: list[int]  # indices of the aligned context sentences, best first
    novel_spans: list[tuple[int, int]]  # answer offsets of content words absent from the context
    number_spans: list[tuple[int, int]]  # answer offsets of numbers absent from the context
    entity_spans: list[tuple[int, int]]  # answer offsets of capitalised words absent from the context
    negation_spans: list[tuple[int, int]]  # answer offsets of negations the context does not make

    @property
    def suspicion(self) -> float:
        """Model-free rank of how badly this claim's words are covered: which claims get embedded."""
        v = self.values
        hard = v[_F["num_novel"]] + v[_F["neg_unsupported"]] + v[_F["antonym"]] + v[_F["novel_cap"]]
        return float(hard + v[_F["novel_frac"]] + v[_F["local_frac"]])


def _prefix_flips(toks: Sequence[Token], context_stems: set[str]) -> int:
    flips = 0
    for t in toks:
        if not t.content or t.stem in context_stems:
            continue
        for prefix in NEG_PREFIXES:
            bare = t.low[len(prefix) :]
            if (t.low.startswith(prefix) and len(bare) >= 4 and stem(bare) in context_stems) or stem(
                prefix + t.low
            ) in context_stems:
                flips += 1
                break
    return flips


def _anchored_swaps(
    toks: Sequence[Token], numbers: Numbers, win_stems: set[str], sents: Sequence[Sequence[tuple[frozenset[str], str]]]
) -> tuple[int, int]:
    """Words or numbers of the claim that stand between the same two neighbours as a different word or
    number of an aligned sentence ("sales rose 5% in [2019] from" for "... in [2020] from"), and are no
    WordNet relative of it: one thing swapped for another in a phrase otherwise restated."""
    claim = surface_items(toks, numbers)
    if len(claim) < 3:
        return 0, 0
    lexicon = get_lexicon()
    swapped: set[frozenset[str]] = set()
    # A word counts when no aligned sentence has it (summaries fuse sentences); a number when no
    # aligned sentence has it between the same two neighbours: "opened in 2019 in Ohio" for "opened
    # in 2020 in Ohio" counts though another sentence mentions 2019, "killed three people" for
    # "killing two people" though another says "brought out three people", and parallel sentences
    # ("an increase of $125 million over guidance", "... of $0.10 over guidance") don't count against
    # each other.
    present = win_stems | {x for sent in sents for item, _ in sent for x in item}

    def in_place(i: int) -> bool:
        item = claim[i][0]
        return any(
            sent[j][0] & item and (claim[i - 1][0] & sent[j - 1][0] and claim[i + 1][0] & sent[j + 1][0])
            for sent in sents
            for j in range(1, len(sent) - 1)
        )

    for sent in sents:
        for i in range(1, len(claim) - 1):
            item, low = claim[i]
            if item in swapped or (item & present if low else in_place(i)):
                continue
            for j in range(1, len(sent) - 1):
                other, other_low = sent[j]
                if item & other or not (claim[i - 1][0] & sent[j - 1][0] and claim[i + 1][0] & sent[j + 1][0]):
                    continue
                if low and other_low and (lexicon.related(low) | lexicon.related2(low)) & other:
                    continue
                if bool(low) != bool(other_low) or other_low in SPOKEN_FILLERS or "'" in other_low:
                    continue
                swapped.add(item)
                break
    words = sum(1 for item in swapped if not next(iter(item)).startswith("#"))
    return words, len(swapped) - words


def _anchored_flips(
    toks: Sequence[Token], flipped: set[str], places: Sequence[Sequence[tuple[str, frozenset[str]]]]
) -> int:
    """How many words of the claim stand where an aligned sentence has their antonym: a content word
    next to the word in the claim is next to the antonym in the sentence ("revenue decreased" for
    "revenue increased"), so the claim restates that sentence with the one word reversed. Where the
    aligned sentences also hold the word itself, the antonym must share more of its neighbours than
    the word does ("costs rose in May" against "revenue rose in May; costs fell in May"); a tie is
    a restatement ("revenue fell in June" against "revenue rose in May and fell in June").
    `flipped`: words the aligned sentences lack entirely; only those are weighed against the other
    members of their closed class (`opposites.class_mates`)."""
    lexicon = get_lexicon()
    antonyms, mates = hand_antonyms(), class_mates()
    anchored: set[str] = set()
    for i, t in enumerate(toks):
        if t.stem in anchored:
            continue
        opposite = antonyms.get(t.stem, frozenset()) | (content_antonyms(lexicon, t.low) if t.content else frozenset())
        if t.stem in flipped:
            opposite |= mates.get(t.stem, frozenset())
        near = neighbours(toks, i) if opposite else set()
        if not near:
            continue
        against = _shared_neighbours(places, opposite, near)
        if against and (t.stem in flipped or against > _shared_neighbours(places, {t.stem}, near)):
            anchored.add(t.stem)
    return len(anchored)


def _shared_neighbours(
    places: Sequence[Sequence[tuple[str, frozenset[str]]]], words: Collection[str], near: set[str]
) -> int:
    """The most of `near` that one of `words` has around it in one of the aligned sentences."""
    return max((len(around & near) for sent in places for w, around in sent if w in words), default=0)


def claim_evidence(index: ContextIndex, claim: Claim, question_stems: set[str], k: int = 4) -> ClaimEvidence:
    """Lexical evidence for one claim (`emb` is left NaN: `GroundingCheck` fills it when it embeds)."""
    toks = tokenize(claim.text)
    nums = find_numbers(claim.text)
    content_toks = [t for t in toks if t.content]
    content = {t.stem for t in content_toks}
    all_stems = {t.stem for t in toks}
    aligned = index.align(content, nums.keys, k)
    win_stems: set[str] = set()
    win_numbers: set[float] = set()
    win_negated: set[str] = set()
    win_neg = 0
    for i in aligned:
        sent = index.sentences[i]
        win_stems |= sent.stems
        win_numbers |= sent.numbers
        win_negated |= sent.negated
        win_neg += sent.negations
    base = claim.start
    novel = {w for w in content if w not in index.stems}
    for i, joined in joined_stems(toks, claim.text):  # "health care" where the context has "healthcare"
        if joined in index.stems:
            novel -= {toks[i].stem, toks[i + 1].stem}
    local = {w for w in content if w in index.stems and w not in win_stems}
    num_novel = [(a, b) for a, b, keys in nums.spans if not keys & index.numbers]
    # A currency the context never names changes the amount it goes with ("2.3 million euros" for
    # "$2.3 million"), so it counts as an unsupported number.
    num_novel += [(a, b) for a, b, names in currency_marks(claim.text) if not {stem(n) for n in names} & index.stems]
    num_local = [(a, b) for a, b, keys in nums.spans if keys & index.numbers and not keys & win_numbers]
    known_pairs = {p for p in item_pairs(item_sequence(toks, nums)) if p[0] in index.stems and p[1] in index.stems}
    novel_pairs = [p for p in known_pairs if p not in index.pairs]
    pair_novel = len(novel_pairs)
    num_pair_novel = sum(1 for a, b in novel_pairs if a[0] == "#" or b[0] == "#")
    hedges = sum(1 for t in toks if t.low in HEDGES and t.stem not in win_stems)
    lexicon = get_lexicon()
    surface = {t.stem: t.low for t in content_toks}
    capitals = {t.stem for t in content_toks if t.capital}
    # "Chinese" where the context says "China" names what the context names; WordNet links the two,
    # and sharing the first four letters keeps that to the name's own derivation ("Taiwanese" is
    # linked to "Chinese" too, and stays an unsupported name)
    capitals -= {
        w for w in capitals & novel if any(r[:4] == w[:4] for r in lexicon.related(surface[w]) & index.stems)
    }
    names = capitals & novel
    syn1 = syn2 = 0
    for w in novel:
        if lexicon.related(surface[w]) & index.stems:
            syn1 += 1
        elif lexicon.related2(surface[w]) & index.stems:
            syn2 += 1
    # The hand list also pairs function words ("up"/"down", "all"/"none"), so it looks at every word;
    # WordNet only at content words.
    antonyms, mates = hand_antonyms(), class_mates()
    flipped = {
        w
        for w in all_stems
        if w not in win_stems and (antonyms.get(w, frozenset()) | mates.get(w, frozenset())) & win_stems
    }
    flipped |= {w for w, low in surface.items() if w not in win_stems and content_antonyms(lexicon, low) & win_stems}
    scopes = negation_scopes(toks)
    unsupported_scopes = [sc for sc in scopes if sc & index.stems and not sc & index.negated]
    claim_negated = {w for sc in scopes for w in sc}
    contradicting = [sc for sc in scopes if sc & win_stems and not sc & win_negated]
    negation_spans = []
    if unsupported_scopes or contradicting:
        negation_spans = [(base + t.start, base + t.end) for t in toks if t.negation]
    n = len(content)
    v = np.zeros(len(CLAIM_FEATURES), dtype=np.float64)
    v[_F["n_content"]] = n
    v[_F["novel"]] = len(novel)
    v[_F["novel_frac"]] = len(novel) / n if n else 0.0
    v[_F["novel_in_question"]] = len(novel & question_stems)
    v[_F["novel_cap"]] = len(names)
    # capitalised members (weekdays, months) already count as names
    v[_F["class_novel"]] = len({w for w in novel - capitals if mates.get(w, frozenset()) & win_stems})
    v[_F["local_novel"]] = len(local)
    v[_F["local_frac"]] = len(local) / n if n else 0.0
    v[_F["num"]] = len(nums.spans)
    v[_F["num_novel"]] = len(num_novel)
    v[_F["num_local"]] = len(num_local)
    v[_F["pair_novel"]] = pair_novel
    v[_F["pair_frac"]] = pair_novel / len(known_pairs) if known_pairs else 0.0
    v[_F["num_pair_novel"]] = num_pair_novel
    v[_F["cap_local"]] = len(capitals & local)
    v[_F["neg_added"]] = max(0, sum(t.negation for t in toks) - win_neg)
    v[_F["neg_unsupported"]] = len(unsupported_scopes)
    v[_F["neg_dropped"]] = len({w for w in content if w in win_negated and w not in claim_negated})
    v[_F["neg_contradicts"]] = len(contradicting)
    # judged against the aligned sentences, so that a long context that happens to hold the word elsewhere
    # doesn't hide the swap
    outside = content - win_stems
    lone = next(iter(outside)) if len(outside) == 1 else None
    v[_F["lone_swap"]] = float(
        n >= 3
        and lone is not None
        and lone not in capitals
        and not lexicon.related(surface[lone]) & win_stems
        and not lexicon.related2(surface[lone]) & win_stems
    )
    v[_F["antonym"]] = len(flipped)
    v[_F["swap_word"]], v[_F["swap_number"]] = _anchored_swaps(
        toks, nums, win_stems, [index.sentences[i].items for i in aligned]
    )
    v[_F["flip_anchored"]] = _anchored_flips(toks, flipped, [index.sentences[i].places for i in aligned])
    v[_F["prefix_flip"]] = _prefix_flips(toks, index.stems)
    v[_F["hedge"]] = hedges
    v[_F["novel_syn"]] = syn1
    v[_F["novel_syn2"]] = syn2
    v[_F["emb"]] = np.nan
    return ClaimEvidence(
        claim=claim,
        values=v,
        aligned=aligned,
        novel_spans=[(base + t.start, base + t.end) for t in content_toks if t.stem in novel],
        number_spans=[(base + a, base + b) for a, b in num_novel],
        entity_spans=[(base + t.start, base + t.end) for t in content_toks if t.stem in names],
        negation_spans=negation_spans,
    )

