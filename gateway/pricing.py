"""Cost of a call in USD: the policy's price override, else litellm's offline price map."""

from __future__ import annotations

import os
from functools import lru_cache

from adapters.base import Usage


@lru_cache(maxsize=512)
def _rates(model: str) -> tuple[float, float]:
    """USD per token (input, output); (0, 0) for models the map does not know."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    try:
        prompt, completion = litellm.cost_per_token(model=model, prompt_tokens=1_000_000, completion_tokens=1_000_000)
    except Exception:  # unmapped models are priced at zero and visible as such in the audit
        return 0.0, 0.0
    return prompt / 1_000_000, completion / 1_000_000


def per_token_rates(backend) -> tuple[float, float]:
    if backend.price is not None:
        return backend.price.input_per_mtok / 1_000_000, backend.price.output_per_mtok / 1_000_000
    if backend.gpu_hour_usd is not None and backend.tokens_per_second:
        per_token = backend.gpu_hour_usd / 3600 / backend.tokens_per_second
        return per_token, per_token
    if backend.adapter == "local_moe":
        return 0.0, 0.0
    return _rates(backend.model)


def prime(backends) -> None:
    """Price every backend once at start-up: the first lookup imports litellm's price map (seconds),
    which must not land on a request."""
    for backend in backends:
        per_token_rates(backend)


def micro_usd(backend, tokens: int, body: dict) -> int:
    """Admission's cost estimate in micro-USD: every estimated token priced as output (the dearer
    rate), so the reservation errs on the side of the budget."""
    rate_in, rate_out = per_token_rates(backend)
    return int(tokens * max(rate_in, rate_out) * 1_000_000) + 1 if (rate_in or rate_out) else 0


def cost_usd(backend, usage: Usage) -> float:
    rate_in, rate_out = per_token_rates(backend)
    return usage.prompt_tokens * rate_in + usage.completion_tokens * rate_out
