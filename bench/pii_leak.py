"""Names that reach the external backend: prompts from held-out sources, through HTTP, counted.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/train_ner.py --folds      # the left-out models, once
    HF_HUB_OFFLINE=1 .venv/bin/python bench/pii_leak.py [--per-source 80] [--recall-first]

For each group of training sources, a gateway (`bulkhead serve`, default PII policy, one external
backend) runs with the name tagger trained without that group (`BULKHEAD_NAME_TAGGER`; the shipped
weights for a group the recipe holds back), and the
group's sentences that hold a person's name are sent as chat requests, each with an e-mail address
and a phone number added, to the recording stand-in (tests/standin.py) on 127.0.0.1. A protected
value has leaked when it appears in what the stand-in received (case-insensitive, whole word).
Every answer is checked to come back exactly as sent (the stand-in echoes the prompt, so the
restored answer must hold every original value); requests another stage refused (a false
injection alarm on a tweet) are counted apart. The names are the corpus' gold PERSON spans, so a
"leak" is sometimes the corpus' own label noise ("bday"), and a name inside a title
("Scarne on Card Tricks") counts too.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.overhead import wait_http  # noqa: E402
from tests.conftest import cli, free_port  # noqa: E402
from tests.standin import StandIn  # noqa: E402

POLICY = """\
risk: {{embeddings: {{enabled: false}}, rules: []}}
pii: {{recall_first: {recall_first}}}
backends:
  - {{name: ext, adapter: openai, model: say, api_base: '{upstream}', trust: external}}
"""
RECALL_FIRST = "{PERSON: 0.15, LOCATION: 0.25}"


def prompts(rows: list, n: int) -> list[tuple[str, list[str], list[str]]]:
    """(prompt, names, e-mail and phone) for up to n of a group's sentences that name a person."""
    from training.ner.fit import entities

    rows = [r for r in rows if any(g.endswith("PER") for g in r[1])]
    rng = random.Random(11)
    out = []
    for tokens, tags in rng.sample(rows, min(n, len(rows))):
        # @mentions and #hashtags: the Broad Twitter Corpus labels a few as persons and most not
        # (as bench/pii_by_source.py, they count on neither side).
        names = [" ".join(tokens[a:b]) for k, a, b in entities(tags) if k == "PER" and tokens[a][0] not in "@#"]
        user = f"{rng.choice('abcdefghij')}{rng.randrange(10**6)}"
        email = f"{user}@example.org"
        phone = f"+44 20 7946 {rng.randrange(10**4):04d}"
        text = f"{' '.join(tokens)}\nReach me at {email} or {phone}."
        out.append((text, names, [email, phone]))
    return out


def leaked(values: list[str], outbound: str) -> list[str]:
    low = outbound.lower()
    return [v for v in values if re.search(r"(?<!\w)" + re.escape(v.lower()) + r"(?!\w)", low)]


def run_group(cases: list, fold: Path, recall_first: bool, standin: StandIn,
              show: bool = False) -> tuple[int, int, int, int, int]:
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        policies = Path(tmp) / "policies"
        policies.mkdir()
        (policies / "default.yaml").write_text(
            POLICY.format(upstream=standin.base_url, recall_first=RECALL_FIRST if recall_first else "{}")
        )
        env = {**os.environ, "BULKHEAD_POLICIES": str(policies), "BULKHEAD_DATA_DIR": f"{tmp}/data",
               "BULKHEAD_SECRET": "bench-leak", "BULKHEAD_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1",
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "BULKHEAD_NAME_TAGGER": str(fold),
               "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/leak.db"}
        env.pop("REDIS_URL", None)
        cli(env, "migrate")
        cli(env, "tenants", "create", "leak")
        key = cli(env, "keys", "create", "--tenant", "leak", "--role", "app").strip().splitlines()[-1]
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", proc)
            names_total = names_leaked = other_leaked = refused = wrong = 0
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=60,
                              headers={"authorization": f"Bearer {key}"}) as client:
                for text, names, structured in cases:
                    standin.clear()
                    r = client.post("/chat/completions", json={"model": "ext", "messages": [
                        {"role": "user", "content": text}]})
                    outbound = " ".join(str(b) for b in standin.bodies())
                    names_total += len(names)
                    gone = leaked(names, outbound)
                    names_leaked += len(gone)
                    if show and gone:
                        print(f"    {gone}: {text[:160]!r}")
                    other_leaked += len(leaked(structured, outbound))
                    if r.status_code != 200:
                        refused += 1  # by another stage (a false injection alarm on a tweet, say)
                        continue
                    wrong += r.json()["choices"][0]["message"]["content"] != text
            return names_total, names_leaked, other_leaked, refused, wrong
        finally:
            proc.terminate()
            proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    from scripts.train_ner import FOLDS, SCORED, left_out_weights
    from training.ner.dataset import load_all

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-source", type=int, default=80)
    ap.add_argument("--recall-first", action="store_true", help=f"recall_first: {RECALL_FIRST}")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--folds-dir", type=Path, default=FOLDS, help="the left-out models (default %(default)s)")
    ap.add_argument("--show", action="store_true", help="print each leaked name and its prompt")
    args = ap.parse_args(argv)
    standin = StandIn().start()
    print(f"{'held-out source':18} {'prompts':>7} {'names':>6} {'names leaked':>12} {'e-mail/phone leaked':>19} "
          f"{'refused':>7} {'answers not restored':>20}")
    totals = [0, 0, 0, 0, 0, 0]
    by_group = load_all()
    try:
        for group in args.only or SCORED:
            fold = left_out_weights(group, args.folds_dir)
            if not fold.is_file():
                print(f"{group}: no left-out model at {fold}; run scripts/train_ner.py --folds")
                continue
            cases = prompts(by_group[group], args.per_source)
            row = (len(cases), *run_group(cases, fold, args.recall_first, standin, args.show))
            print(f"{group:18} {row[0]:7} {row[1]:6} {row[2]:12} {row[3]:19} {row[4]:7} {row[5]:20}")
            totals = [t + v for t, v in zip(totals, row, strict=True)]
    finally:
        standin.stop()
    print(f"{'all':18} {totals[0]:7} {totals[1]:6} {totals[2]:12} {totals[3]:19} {totals[4]:7} {totals[5]:20}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
