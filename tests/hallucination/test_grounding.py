"""The grounding check with the committed verifier: the contract, the plumbing, and what any sound
verifier must rank right (how well it ranks is measured leave-one-source-out in
bench/grounding_eval.py, not here)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from gateway.hallucination.grounding import GroundingCheck
from gateway.hallucination.verifier import (
    CHUNK,
    CHUNK_LIMIT,
    IN_CHUNK,
    IN_CONTEXT,
    NOWHERE,
    QUESTION,
    SHARED,
    SPECIAL,
    TOP_CHUNKS,
    UNSHARED,
    WEIGHTS,
    ContextChunks,
    Verifier,
    VerifierWeightsError,
    check_weights,
    pair_ids,
)

CONTEXT = (
    "Acme Corp reported revenue of $2.3 million in 2020, up from $1.9 million in 2019. "
    "The company opened 12 new stores in Ohio and hired 300 employees. "
    "Net loss narrowed to $0.4 million. The board approved a new buyback program."
)
GOOD = "Acme Corp reported revenue of $2.3 million in 2020."


@pytest.fixture(scope="module")
def check():
    return GroundingCheck()


def test_grounded_answer_scores_above_an_unrelated_one(check):
    good = check.score(CONTEXT, GOOD)
    unrelated = check.score(CONTEXT, "The moon orbits Jupiter every nine days, astronomers in Peru said.")
    assert 0.0 <= unrelated.score < good.score <= 1.0
    assert good.kind == "grounding" and good.version == check.verifier.version
    # the file's digest rides with the version: a refitted threshold or combiner is another model
    base, digest = good.version.split("+")
    assert base == check.verifier.meta["version"] and len(digest) == 12
    assert good.detail["claims"] == 1 and good.detail["pairs"] >= 1


def test_worst_claim_drives_the_answer_score(check):
    bad = GOOD + " Astronomers in Peru saw the moon orbit Jupiter every nine days."
    result = check.score(CONTEXT, bad)
    assert len(result.claims) == 2
    assert result.claims[1].score < result.claims[0].score
    assert result.score < check.score(CONTEXT, GOOD).score
    # the combiner reads the verifier's weakest claim: a stronger weakest claim scores higher
    assert check.combine(0.9, CONTEXT, []) > check.combine(0.1, CONTEXT, [])


def test_numbers_and_words_the_context_lacks_are_located(check):
    answer = "Acme Corp reported revenue of $4.7 million in 2020 from Texas."
    result = check.score(CONTEXT, answer)
    assert [answer[a:b] for a, b in result.unsupported_numbers] == ["4.7"]
    assert "Texas" in [answer[a:b] for a, b in result.novel_words]
    assert check.score(CONTEXT, GOOD).unsupported_numbers == []


def test_conversational_framing_and_citations_do_not_count(check):
    plain = check.score(CONTEXT, GOOD)
    framed = "Sure! Based on the provided context, " + GOOD + " [1] I hope this helps."
    result = check.score(CONTEXT, framed)
    assert result.score == pytest.approx(plain.score, abs=1e-6)
    assert len(result.claims) == 1


def test_an_abstention_is_not_unsupported(check):
    only = check.score(CONTEXT, "Sure. The provided context does not mention the CEO's salary.")
    assert only.score == 1.0 and only.verdict == "supported" and only.detail == {"claims": 0, "skipped": 2}


def test_claim_offsets_and_json_safe_result(check):
    answer = "Revenue was $2.3 million.\n- Net loss narrowed to $0.4 million"
    result = check.score([CONTEXT], answer, question="How did Acme do?")
    assert [answer[c.start : c.end] for c in result.claims] == [
        "Revenue was $2.3 million.",
        "Net loss narrowed to $0.4 million",
    ]
    dumped = json.dumps(result.to_dict())
    assert "Revenue" not in dumped and "Acme" not in dumped  # offsets only, never text


def test_empty_answer_and_empty_context(check):
    assert check.score(CONTEXT, "").verdict == "supported"
    empty = check.score("", "Revenue was $2.3 million.")
    assert empty.verdict == "unsupported" and empty.score == 0.0
    assert check.score([], "Anything.").verdict == "unsupported"


def test_threshold_override(check):
    assert check.score(CONTEXT, GOOD, threshold=1.0).verdict == "unsupported"
    assert check.score(CONTEXT, GOOD, threshold=0.0).verdict == "supported"
    assert GroundingCheck(threshold=0.99).threshold == 0.99
    assert 0.0 < check.threshold < 1.0  # the shipped default, chosen leave-one-source-out
    with pytest.raises(ValueError):
        GroundingCheck(threshold=1.5)


def test_bad_argument_types(check):
    with pytest.raises(TypeError):
        check.score(CONTEXT, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check.score([CONTEXT, 3], "x")  # type: ignore[list-item]


def test_claims_past_the_limit_are_not_scored():
    check = GroundingCheck(max_claims=3)
    answer = " ".join(f"Acme opened store number {i} in Ohio." for i in range(10))
    result = check.score(CONTEXT, answer)
    assert len(result.claims) == 3 and result.detail["claims"] == 3


def test_a_claim_is_compared_with_the_chunks_that_share_its_words():
    tok = check_tok()
    sentences = [f"Sentence {w} talks about topic {w} alone." for w in ("alpha", "beta", "gamma", "delta", "omega")]
    chunks = ContextChunks(tok, [" ".join(sentences)])
    assert all(len(c.ids) <= CHUNK for c in chunks.chunks)
    best = chunks.best({"omega"})
    assert best and "omega" in best[0].words
    # chunks returned together never share a sentence
    for a in best:
        for b in best:
            assert a is b or a.last < b.first or a.first > b.last
    # nothing shared: the first chunks, so that the model still reads a paraphrase
    assert chunks.best({"zzz"})[0].first == 0


def test_a_geometry_sets_how_long_and_how_many_chunks_a_claim_reads():
    """What `bench/grounding.py --geometry` times: the same model, each claim against more or fewer,
    longer or shorter chunks of a context long enough to need several."""
    context = " ".join(f"In {1900 + i} the town of Alder{i} built {i} bridges over the river." for i in range(30))
    claims = ["Alder3 built 3 bridges.", "Alder7 built 7 bridges."]
    v = Verifier(chunk=24, top_chunks=1)
    assert all(len(c.ids) <= 24 for c in v.chunks([context]).chunks)
    _, pairs = v.claim_scores([context], claims)
    assert pairs == 2
    v.set_geometry(chunk=80, top_chunks=2)  # the context cut at 24 is not reused
    assert max(len(c.ids) for c in v.chunks([context]).chunks) > 24
    _, pairs = v.claim_scores([context], claims)
    assert pairs == 4
    for bad in ({"chunk": 0}, {"chunk": CHUNK_LIMIT + 1}, {"top_chunks": 0}):
        with pytest.raises(ValueError):
            Verifier(**bad)


def test_weights_fitted_at_another_geometry_are_refused(tmp_path):
    """A file from before the meta recorded its geometry was fitted on two chunks of 80 word pieces;
    its threshold and combiner mean something else at this build's geometry."""
    with np.load(WEIGHTS) as f:
        state = {k: f[k] for k in f.files}
    meta = json.loads(str(state["meta"]))
    for name, changed in (("legacy", {k: v for k, v in meta.items() if k not in ("chunk", "top_chunks")}),
                          ("wider", {**meta, "chunk": CHUNK + 8})):
        path = tmp_path / f"{name}.npz"
        np.savez(path, **{**state, "meta": np.array(json.dumps(changed))})
        with pytest.raises(VerifierWeightsError, match="rebuild it with scripts/train_grounding.py"):
            Verifier(path)


def test_pair_inputs_mark_what_each_side_shares():
    ids, types, match = pair_ids([5, 6, 102, 7], [6, 8], frozenset({5, 6, 8}))
    assert ids == [101, 5, 6, 102, 7, 102, 6, 8, 102]
    assert types == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert match == [SPECIAL, IN_CONTEXT, IN_CHUNK, SPECIAL, QUESTION, SPECIAL, SHARED, UNSHARED, SPECIAL]
    _, _, none = pair_ids([9], [6], frozenset({6}))
    assert none[1] == NOWHERE


def test_contexts_are_cut_once_and_cached(check):
    v = check.verifier
    assert v.chunks([CONTEXT]) is v.chunks([CONTEXT])


def test_missing_or_corrupt_weights_name_the_rebuild_script(tmp_path):
    with pytest.raises(VerifierWeightsError, match="scripts/train_grounding.py"):
        check_weights(tmp_path / "absent.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(VerifierWeightsError, match="unreadable"):
        Verifier(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{"head.weight": np.zeros((1, 771), dtype=np.float16)})
    with pytest.raises(VerifierWeightsError, match="lack"):
        check_weights(partial)


def test_shipped_weights_are_compact_and_complete():
    check_weights(WEIGHTS)
    assert WEIGHTS.stat().st_size < 30_000_000
    with np.load(WEIGHTS) as f:
        meta = json.loads(str(f["meta"]))
        assert all(f[k].dtype == np.float16 for k in f.files if k != "meta")
    assert meta["version"] and 0.0 < meta["threshold"] < 1.0 and meta["sources"]
    assert (meta["chunk"], meta["top_chunks"]) == (CHUNK, TOP_CHUNKS)


def test_importing_the_package_does_not_load_torch():
    code = (
        "import sys, gateway.hallucination as h, gateway.hallucination.cli;"
        "h.GroundingCheck;"
        "assert 'torch' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def check_tok():
    from gateway import minilm  # the package's tokenizer

    return minilm.tokenizer()
