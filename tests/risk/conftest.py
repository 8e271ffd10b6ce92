"""Risk tests share one embedder and one engine per session: loading MiniLM and embedding the exemplars
is the slow part, and both are read-only afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA = Path(__file__).resolve().parent / "data"


def load_jsonl(name: str) -> list[dict]:
    return [
        json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").split("\n") if line.strip()
    ]


@pytest.fixture(scope="session")
def embedder():
    from gateway.risk.embeddings import get_embedder

    return get_embedder()


@pytest.fixture(scope="session")
def engine(embedder):
    from gateway.risk.assess import RiskEngine

    return RiskEngine(embedder)


@pytest.fixture(scope="session")
def injection(embedder):
    from gateway.risk.injection import InjectionDetector

    return InjectionDetector()


@pytest.fixture(scope="session")
def domain_scorer(embedder):
    from gateway.risk.domains import DomainScorer

    return DomainScorer(embedder)
