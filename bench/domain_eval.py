"""The sensitive-domain detector (gateway/risk/domains.py) on public text nobody here tuned it on.

The detector is authored, not fitted: a lexicon per domain and a dozen exemplar sentences, mixed
as 0.5 * lexicon + 0.5 * similarity and compared with the policy's threshold (0.4 by default). So
every source below is held out; none of them was read to write the lexicons or exemplars, and
nothing here may be tuned on them either. Each source's texts are questions a user would send,
labelled with the domain of the document set they came from:

- `h2oai/h2o-evals` (MPL-2.0): LLM-evaluation questions about industry documents; one source per
  document set. Healthcare -> medical, Banking and Finance -> financial, Legal -> legal, HR -> hr;
  Telecom customer service -> general.
- `abachaa/MedQuAD` (CC BY 4.0): consumer health questions from NIH sites -> medical.
- `openai/grade-school-math` (MIT): maths word problems -> general (money and shopping in many).

Per source: the share flagged as its own domain at the threshold by the detector as shipped, by its
lexicon alone (what a policy with `embeddings.enabled: false` runs) and by its similarity alone;
for general sources, the share flagged as any domain. Per domain: AUROC of the domain's score,
that domain's texts against the general sources', for the three. The point is whether the
similarity half (one sentence-embedding pass per request, ~11 ms on one core: bench/RESULTS.md)
earns its place beside the lexicon.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/domain_eval.py --mirrors DIR

`--mirrors`: a directory holding the fetched repositories below (`owner+name/repo` git directories,
as the search tool's `fetch` leaves them; read with the injection converters' `Mirror`). Texts
flagged by ../shared/contamination/check.py are dropped.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.risk.config import DOMAINS  # noqa: E402
from gateway.risk.domains import DomainScorer  # noqa: E402
from gateway.risk.embeddings import get_embedder  # noqa: E402
from gateway.risk.prepare import prepare  # noqa: E402
from training.injection.fit import auroc, auroc_ci, wilson  # noqa: E402
from training.injection.sources import common  # noqa: E402

H2O = ("h2oai/h2o-evals", "a5ece86fc4b10217c4566e78fe3c5e981e1b207b")
MEDQUAD = ("abachaa/MedQuAD", "577bd37b96c02d1833b2c9eed2de9f96964e96cb")
GSM8K = ("openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c")
H2O_DOMAIN = {"Healthcare": "medical", "Banking": "financial", "Finance": "financial", "Legal": "legal",
              "HR": "hr", "Telcom_Telcom_Customer_Service_Information": "general"}
PER_SOURCE = 150
THRESHOLD = 0.4


def sample(texts: list[str], n: int, seed: str) -> list[str]:
    unique = sorted(set(t.strip() for t in texts if t and t.strip()))
    random.Random(seed).shuffle(unique)
    return unique[:n]


def load(mirrors: Path) -> dict[str, tuple[str, list[str]]]:
    """source -> (domain, texts)."""
    out: dict[str, tuple[str, list[str]]] = {}
    h2o, medquad, gsm8k = (common.Mirror(str(mirrors), *repo) for repo in (H2O, MEDQUAD, GSM8K))
    for path in h2o.ls("catalog"):
        m = re.match(r"catalog/([^/]+)/CSV_files/question_type_.*\.csv$", path)
        if not m:
            continue
        catalog = m.group(1)
        domain = H2O_DOMAIN.get(catalog) or H2O_DOMAIN.get(catalog.split("_")[0])
        if domain is None:
            continue
        rows = csv.DictReader(io.StringIO(h2o.show(path)))
        out[f"h2o:{catalog}"] = (domain, sample([r["question"] for r in rows], PER_SOURCE, catalog))
    # MedQuAD: one XML file per topic; the first files of each NIH collection, all of their questions
    files = [f for f in medquad.ls() if f.endswith(".xml")]
    questions = []
    for collection in sorted({f.split("/")[0] for f in files}):
        for path in [f for f in files if f.startswith(collection + "/")][:25]:
            questions += re.findall(r"<Question[^>]*>(.*?)</Question>", medquad.show(path), re.S)
    out["medquad"] = ("medical", sample(questions, PER_SOURCE * 2, "medquad"))
    lines = gsm8k.show("grade_school_math/data/test.jsonl").splitlines()
    out["gsm8k"] = ("general", sample([json.loads(x)["question"] for x in lines if x.strip()], PER_SOURCE * 2,
                                      "gsm8k"))
    return out


def drop_contaminated(sources: dict[str, tuple[str, list[str]]]) -> int:
    """../shared/contamination/check.py over every text (the injection converters' helper); drops
    what it flags."""
    recs = [{"id": f"{s}:{i}", "text": t} for s, (_, ts) in sources.items() for i, t in enumerate(ts)]
    kept, dropped = common.drop_contaminated(recs, common.DEFAULT_CHECK)
    keep = {r["id"] for r in kept}
    for s, (domain, ts) in list(sources.items()):
        sources[s] = (domain, [t for i, t in enumerate(ts) if f"{s}:{i}" in keep])
    return dropped or 0


def scores(texts: list[str], scorer: DomainScorer, embedder) -> dict[str, np.ndarray]:
    """(texts, domains) arrays: the detector's own score (`DomainScorer.score`, one text a request),
    and its two halves alone."""
    prepared = prepare([("user", t) for t in texts], embedder)
    shipped = [scorer.score([p]) for p in prepared]
    lex = np.array([[scorer.lexicons[d].score(p.norm) for d in DOMAINS] for p in prepared])
    sim = np.array([[scorer._similarity(p.vectors, d) for d in DOMAINS] for p in prepared])
    return {"shipped": np.array([[s[d] for d in DOMAINS] for s in shipped]), "lexicon": lex, "similarity": sim}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirrors", type=Path, required=True)
    args = ap.parse_args()
    sources = load(args.mirrors)
    dropped = drop_contaminated(sources)
    print(f"{sum(len(t) for _, t in sources.values())} texts from {len(sources)} sources "
          f"({dropped} dropped by the contamination check)\n")
    embedder = get_embedder()
    scorer = DomainScorer(embedder)
    by_source = {s: scores(ts, scorer, embedder) for s, (_, ts) in sources.items()}
    kinds = ("shipped", "lexicon", "similarity")
    print(f"flagged at >= {THRESHOLD}: own domain (general sources: any domain), 95% Wilson interval")
    print(f"{'source':<58}{'domain':<10}{'n':>5}  " + "  ".join(f"{k:>20}" for k in kinds))
    for s, (domain, ts) in sorted(sources.items(), key=lambda kv: (kv[1][0], kv[0])):
        cells = []
        for k in kinds:
            x = by_source[s][k]
            hit = x.max(axis=1) >= THRESHOLD if domain == "general" else x[:, DOMAINS.index(domain)] >= THRESHOLD
            lo, hi = wilson(int(hit.sum()), len(hit))
            cells.append(f"{hit.mean():.2f} [{lo:.2f},{hi:.2f}]")
        print(f"{s:<58}{domain:<10}{len(ts):>5}  " + "  ".join(f"{c:>20}" for c in cells))
    print("\nAUROC of each domain's score, its texts against the general sources' (95% bootstrap interval)")
    general = [s for s, (d, _) in sources.items() if d == "general"]
    for domain in ("medical", "financial", "legal", "hr"):
        own = [s for s, (d, _) in sources.items() if d == domain]
        if not own:
            continue
        j = DOMAINS.index(domain)
        cells = []
        for k in kinds:
            pos = np.concatenate([by_source[s][k][:, j] for s in own])
            neg = np.concatenate([by_source[s][k][:, j] for s in general])
            a, (lo, hi) = auroc(pos, neg), auroc_ci(pos, neg)
            cells.append(f"{a:.3f} [{lo:.2f},{hi:.2f}]")
        print(f"  {domain:<10} {len(own)} sources  " + "  ".join(f"{k} {c}" for k, c in zip(kinds, cells, strict=True)))


if __name__ == "__main__":
    main()
