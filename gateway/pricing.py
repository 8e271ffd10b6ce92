"""Cost of a call in USD: the policy's price override, else litellm's offline price map.

litellm's prices are read through litellm itself (`litellm_tiers`), but importing litellm and
asking it tier by tier costs ~10 s, paid at every gateway start and every `bulkhead policy explain`.
So `data/price_tiers.json.gz` holds the tiers litellm gives for every model its map names (bare
and provider-prefixed), built by `scripts/build_price_tiers.py` from the pinned litellm; it is used
only while the installed litellm is the version it was built from, and any other model still asks
litellm. `tests/unit/test_pricing.py` checks the table against litellm.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from adapters.base import Usage

TABLE_PATH = Path(__file__).resolve().parent / "data" / "price_tiers.json.gz"

# Prompt sizes (tokens) above which litellm's price map charges a long-context rate.
_TIER_STARTS = (32_000, 100_000, 128_000, 200_000, 256_000, 272_000, 512_000)


Tiers = tuple[tuple[int, float, float], ...]


@lru_cache(maxsize=1)
def _table() -> dict[str, Tiers]:
    """The prebuilt tiers, or nothing when they were built from another litellm than the installed one."""
    try:
        data = json.loads(gzip.decompress(TABLE_PATH.read_bytes()))
        if data["litellm"] != version("litellm"):
            return {}
    except (OSError, ValueError, KeyError, PackageNotFoundError):
        return {}
    return {m: tuple((int(a), float(b), float(c)) for a, b, c in tiers) for m, tiers in data["models"].items()}


@lru_cache(maxsize=512)
def _tiers(model: str) -> Tiers:
    """(prompt tokens above which it applies, USD per input token, per output token), cheapest tier
    first; ((0, 0, 0),) for models the map does not know."""
    found = _table().get(model)
    return found if found is not None else litellm_tiers(model)


def litellm_tiers(model: str) -> Tiers:
    """`_tiers` as litellm answers it.

    Asked of litellm at each tier's prompt size rather than once at a million tokens: one big
    question is answered at the long-context rate, which would price every ordinary request of such
    a model (gemini-2.5-pro: 2x input, 1.5x output) at it."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # litellm takes ~2 s to import (and reads the variable above); only models outside the table ask it
    import litellm

    litellm.suppress_debug_info = True  # else an unmapped model prints litellm's provider list to stdout

    from litellm._internal_context import pinned_billing_time

    # Some models carry off-peak rates that litellm applies by the clock (DeepSeek's, by hour and
    # weekday): a table built at night held half the day's price, and a budget must not depend on
    # when it was computed. Price at the dearest hour of the week.
    moments = [None]
    if (litellm.model_cost.get(model) or {}).get("off_peak_pricing"):
        monday = datetime(2026, 1, 5, tzinfo=UTC)
        moments = [monday + timedelta(minutes=30 + 60 * h) for h in range(7 * 24)]

    def at(moment, prompt_tokens: int) -> tuple[float, float]:
        with nullcontext() if moment is None else pinned_billing_time(moment):
            return litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens, completion_tokens=1_000)

    def rates(prompt_tokens: int) -> tuple[float, float]:
        cost_in, cost_out = max(at(m, prompt_tokens) for m in moments)
        return cost_in / prompt_tokens, cost_out / 1_000

    try:
        tiers = [(0, *rates(1_000))]
    except Exception:  # unmapped models are priced at zero and visible as such in the audit
        return ((0, 0.0, 0.0),)
    for start in _TIER_STARTS:
        try:
            rate_in, rate_out = rates(start + 1)
        except Exception:  # a size litellm will not price: keep the tiers found so far
            break
        _, last_in, last_out = tiers[-1]
        if not (math.isclose(rate_in, last_in, rel_tol=1e-6) and math.isclose(rate_out, last_out, rel_tol=1e-6)):
            tiers.append((start, rate_in, rate_out))
    return tuple(tiers)


def per_token_rates(backend, prompt_tokens: int = 0) -> tuple[float, float]:
    """USD per (input, output) token of a call with this many prompt tokens."""
    if backend.price is not None:
        return backend.price.input_per_mtok / 1_000_000, backend.price.output_per_mtok / 1_000_000
    if backend.gpu_hour_usd is not None and backend.tokens_per_second:
        per_token = backend.gpu_hour_usd / 3600 / backend.tokens_per_second
        return per_token, per_token
    if backend.adapter == "local_moe":
        return 0.0, 0.0
    rate_in, rate_out = 0.0, 0.0
    for start, tier_in, tier_out in _tiers(backend.model):
        if prompt_tokens > start or start == 0:
            rate_in, rate_out = tier_in, tier_out
    return rate_in, rate_out


def prime(backends) -> None:
    """Price every backend once at start-up: a model outside the prebuilt table makes the first
    lookup import litellm (seconds), which must not land on a request."""
    for backend in backends:
        per_token_rates(backend)


def micro_usd(backend, tokens: int, body: dict) -> int:
    """Admission's cost estimate in micro-USD: every estimated token priced as output (the dearer
    rate), so the reservation errs on the side of the budget."""
    rate_in, rate_out = per_token_rates(backend, tokens)
    return int(tokens * max(rate_in, rate_out) * 1_000_000) + 1 if (rate_in or rate_out) else 0


def cost_usd(backend, usage: Usage) -> float:
    rate_in, rate_out = per_token_rates(backend, usage.prompt_tokens)
    return usage.prompt_tokens * rate_in + usage.completion_tokens * rate_out
