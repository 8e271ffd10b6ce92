"""Labelled texts for the sensitive-domain head (medical, financial, legal, HR; the rest general).

Every source is a set of texts a user could send through the gateway (questions, documents handed
over as context), labelled with the domain of the whole set: no text is labelled by hand. The
source is the unit of evaluation (`bench/domain_eval.py` fits on all sources but one and scores the
one left out), so a set that holds several document collections is split by collection.

Read from fetched git snapshots at pinned commits (`--mirrors DIR`: `owner+name/` git directories,
as the search tool's `fetch` leaves them) through the injection converters' `Mirror`. Texts that
../shared/contamination/check.py flags are dropped. Nothing here is committed data: the manifest
(`manifest.json`, written by `write_manifest`) and this file rebuild it.

Left out on purpose: `f/awesome-chatgpt-prompts` ("act as a doctor / lawyer / accountant": domain
prompts that a set-level "general" label would call negatives), LegalBench's non-commercial tasks
(Learned Hands, OPP-115 and others), FinQA (its data files exceed the snapshot's 4 MiB limit).
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training" / "injection" / "sources"))
import common  # noqa: E402  (the injection converters' Mirror and contamination helpers)

LABELS = ("general", "medical", "financial", "legal", "hr")
PER_SOURCE = 300  # texts sampled per source: enough for a per-source interval of about +-5 points
H2O_PER_SET = 150
MAX_CHARS = 2000  # long clauses are cut: the head reads the first windows anyway

REPOS = {
    "h2o": ("h2oai/h2o-evals", "a5ece86fc4b10217c4566e78fe3c5e981e1b207b", "MPL-2.0"),
    "medquad": ("abachaa/MedQuAD", "577bd37b96c02d1833b2c9eed2de9f96964e96cb", "CC BY 4.0"),
    "gsm8k": ("openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c", "MIT"),
    "pubmedqa": ("pubmedqa/pubmedqa", "1cbae8e92f72f20c8d3747cbb3bf5bc53554d997", "MIT"),
    "tatqa": ("NExTplusplus/TAT-QA", "870accc41953dcde885aabeb963d94aabdc0fbc3", "MIT"),
    "legalbench": ("HazyResearch/legalbench", "ce482446b8eac4403b6db2c17223af4514bb24e3",
                   "per task: CC BY 4.0, CC BY-SA 4.0 or MIT only"),
    "arena": ("lm-sys/arena-hard-auto", "efc012e192b88024a5203f5a28ec8fc0342946df", "Apache-2.0"),
    "gpteacher": ("teknium1/GPTeacher", "481075123c29854bddb82655badeef6a438f2436", "MIT"),
    "self-instruct": ("yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23",
                      "Apache-2.0 (T0 templates: the underlying set's licence, listed in T0_SETS)"),
}
# T0 prompt templates over general-purpose sets (self-instruct's per-template files), by licence
T0_DIR = "data/finetuning/t0_train_50k/data_per_template"
T0_SETS = (("t0-cosmos-qa", "cosmos_qa_context_description_question_text", "CC BY 4.0"),
           ("t0-duorc", "duorc_SelfRC_question_answering", "MIT"),
           ("t0-dbpedia", "dbpedia_14_pick_one_category_for_the_following_text", "CC BY-SA 3.0"),
           ("t0-qasc", "qasc_qa_with_separated_facts_1", "CC BY 4.0"))
H2O_DOMAIN = {"Healthcare": "medical", "Banking": "financial", "Finance": "financial", "Legal": "legal",
              "HR": "hr", "Telcom_Telcom_Customer_Service_Information": "general"}
# LegalBench task licences, as each task's README states them; anything else (NC) is skipped
LEGALBENCH_OK = re.compile(r"\*\*License\*\*:\s*\[?(CC by 4\.0|CC BY-SA 4\.0|MIT)\b", re.I)
LEGALBENCH_GROUPS = (("cuad_", "legalbench-cuad"), ("maud_", "legalbench-maud"),
                     ("contract_nli_", "legalbench-contract-nli"), ("", "legalbench-other"))


@dataclass
class Source:
    name: str
    domain: str
    repo: str
    commit: str
    licence: str
    paths: list[str]
    texts: list[str] = field(default_factory=list)
    dropped: int = 0

    def manifest(self) -> dict:
        return {"source": self.name, "domain": self.domain, "repo": self.repo, "commit": self.commit,
                "licence": self.licence, "paths": self.paths, "texts": len(self.texts),
                "dropped_contamination": self.dropped}


def sample(texts: list[str], n: int, seed: str) -> list[str]:
    unique = sorted({t.strip()[:MAX_CHARS] for t in texts if t and t.strip()})
    random.Random(seed).shuffle(unique)
    return unique[:n]


def _h2o(m: common.Mirror) -> list[Source]:
    out = []
    for path in m.ls("catalog"):
        found = re.match(r"catalog/([^/]+)/CSV_files/question_type_.*\.csv$", path)
        if not found:
            continue
        catalog = found.group(1)
        domain = H2O_DOMAIN.get(catalog) or H2O_DOMAIN.get(catalog.split("_")[0])
        if domain is None:
            continue
        rows = csv.DictReader(io.StringIO(m.show(path)))
        out.append(Source(f"h2o:{catalog}", domain, *REPOS["h2o"], [path],
                          sample([r["question"] for r in rows], H2O_PER_SET, catalog)))
    return out


def _medquad(m: common.Mirror) -> list[Source]:
    # one XML file per topic: the first 25 files of each NIH collection, all of their questions
    files = [f for f in m.ls() if f.endswith(".xml")]
    read, questions = [], []
    for collection in sorted({f.split("/")[0] for f in files}):
        for path in [f for f in files if f.startswith(collection + "/")][:25]:
            read.append(path)
            questions += re.findall(r"<Question[^>]*>(.*?)</Question>", m.show(path), re.S)
    return [Source("medquad", "medical", *REPOS["medquad"], sorted({p.split("/")[0] + "/" for p in read}),
                   sample(questions, PER_SOURCE, "medquad"))]


def _gsm8k(m: common.Mirror) -> list[Source]:
    path = "grade_school_math/data/test.jsonl"
    lines = [json.loads(x)["question"] for x in m.show(path).splitlines() if x.strip()]
    return [Source("gsm8k", "general", *REPOS["gsm8k"], [path], sample(lines, PER_SOURCE, "gsm8k"))]


def _pubmedqa(m: common.Mirror) -> list[Source]:
    # research questions with the first sentences of their abstract, as a RAG prompt would carry them
    path = "data/ori_pqal.json"
    texts = [r["QUESTION"] + "\n\n" + " ".join(r["CONTEXTS"])[:600] for r in json.loads(m.show(path)).values()]
    return [Source("pubmedqa", "medical", *REPOS["pubmedqa"], [path], sample(texts, PER_SOURCE, "pubmedqa"))]


def _tatqa(m: common.Mirror) -> list[Source]:
    # questions about annual-report passages, each with the passage it asks about
    path = "dataset_raw/tatqa_dataset_dev.json"
    texts = []
    for doc in json.loads(m.show(path)):
        passage = " ".join(p["text"] for p in doc["paragraphs"])[:600]
        texts += [passage + "\n\n" + q["question"] for q in doc["questions"][:2]]
    return [Source("tatqa", "financial", *REPOS["tatqa"], [path], sample(texts, PER_SOURCE, "tatqa"))]


def _legalbench(m: common.Mirror) -> list[Source]:
    groups: dict[str, tuple[list[str], list[str]]] = {}
    listing = m.ls("tasks")
    readmes = {p.split("/")[1]: p for p in listing if p.lower().endswith("/readme.md")}
    for path in listing:
        found = re.match(r"tasks/([^/]+)/train\.tsv$", path)
        if not found:
            continue
        task = found.group(1)
        if task not in readmes or not LEGALBENCH_OK.search(m.show(readmes[task])):
            continue
        rows = list(csv.DictReader(io.StringIO(m.show(path)), delimiter="\t"))
        column = next((c for c in ("text", "question", "clause", "contract") if rows and c in rows[0]), None)
        if column is None:
            continue
        name = next(n for prefix, n in LEGALBENCH_GROUPS if task.startswith(prefix))
        paths, texts = groups.setdefault(name, ([], []))
        paths.append(path)
        texts += [r[column] for r in rows]
    return [Source(name, "legal", *REPOS["legalbench"], sorted(paths), sample(texts, PER_SOURCE, name))
            for name, (paths, texts) in sorted(groups.items())]


def _arena(m: common.Mirror) -> list[Source]:
    path = "data/arena-hard-v0.1/question.jsonl"
    texts = [json.loads(x)["turns"][0]["content"] for x in m.show(path).splitlines() if x.strip()]
    return [Source("arena-hard", "general", *REPOS["arena"], [path], sample(texts, PER_SOURCE, "arena"))]


def _gpteacher(m: common.Mirror) -> list[Source]:
    path = "Roleplay/roleplay-simple-deduped-roleplay-instruct.json"
    texts = [(x["instruction"] + "\n\n" + x.get("input", "")).strip() for x in json.loads(m.show(path))]
    return [Source("gpteacher-roleplay", "general", *REPOS["gpteacher"], [path],
                   sample(texts, PER_SOURCE, "gpteacher"))]


def _self_instruct(m: common.Mirror) -> list[Source]:
    repo, commit, _ = REPOS["self-instruct"]
    out = []
    for name, path in (("self-instruct-user", "human_eval/user_oriented_instructions.jsonl"),
                       ("self-instruct-seed", "data/seed_tasks.jsonl")):
        rows = [json.loads(x) for x in m.show(path).splitlines() if x.strip()]
        texts = [(r["instruction"] + "\n\n" + r["instances"][0]["input"]).strip() for r in rows]
        out.append(Source(name, "general", repo, commit, "Apache-2.0", [path], sample(texts, PER_SOURCE, name)))
    for name, template, licence in T0_SETS:
        path = f"{T0_DIR}/{template}.jsonl"
        texts = [json.loads(x)["prompt"] for x in m.show(path).splitlines() if x.strip()]
        out.append(Source(name, "general", repo, commit, licence, [path], sample(texts, PER_SOURCE, name)))
    return out


READERS = {"h2o": _h2o, "medquad": _medquad, "gsm8k": _gsm8k, "pubmedqa": _pubmedqa, "tatqa": _tatqa,
           "legalbench": _legalbench, "arena": _arena, "gpteacher": _gpteacher,
           "self-instruct": _self_instruct}


def load(mirrors: Path, check: bool = True) -> list[Source]:
    """Every source, contamination-checked (`check`), in a fixed order."""
    sources = []
    for key, read in READERS.items():
        repo, commit, _ = REPOS[key]
        sources += read(common.Mirror(str(mirrors), repo, commit))
    sources = [s for s in sources if s.texts]
    if check:
        recs = [{"id": f"{s.name}:{i}", "text": t} for s in sources for i, t in enumerate(s.texts)]
        kept, _ = common.drop_contaminated(recs, common.DEFAULT_CHECK)
        keep = {r["id"] for r in kept}
        for s in sources:
            texts = [t for i, t in enumerate(s.texts) if f"{s.name}:{i}" in keep]
            s.dropped, s.texts = len(s.texts) - len(texts), texts
    return sorted(sources, key=lambda s: (LABELS.index(s.domain), s.name))


def write_manifest(sources: list[Source], path: Path) -> None:
    path.write_text(json.dumps([s.manifest() for s in sources], indent=2) + "\n")
