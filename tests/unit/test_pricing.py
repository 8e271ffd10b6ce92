"""Prices come from litellm's offline map (pinned with litellm), tier by tier."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters.base import Usage
from gateway import pricing
from gateway.policy import Backend

ROOT = Path(__file__).resolve().parents[2]


def backend(model: str, **kw) -> Backend:
    return Backend(name="b", model=model, **kw)


def test_an_ordinary_request_is_priced_at_the_base_rate_not_the_long_context_one():
    # gemini-2.5-pro: $1.25 / $10 per million tokens, $2.50 / $15 above 200k prompt tokens
    b = backend("gemini-2.5-pro")
    assert pricing.per_token_rates(b, 1_000) == pytest.approx((1.25e-6, 1e-5))
    assert pricing.per_token_rates(b, 200_000) == pytest.approx((1.25e-6, 1e-5))
    assert pricing.per_token_rates(b, 200_001) == pytest.approx((2.5e-6, 1.5e-5))
    assert pricing.cost_usd(b, Usage(1_000, 100)) == pytest.approx(1_000 * 1.25e-6 + 100 * 1e-5)
    assert pricing.cost_usd(b, Usage(250_000, 100)) == pytest.approx(250_000 * 2.5e-6 + 100 * 1.5e-5)


def test_flat_priced_unknown_and_overridden_models():
    assert pricing.per_token_rates(backend("gpt-4o-mini"), 500_000) == pytest.approx((1.5e-7, 6e-7))
    assert pricing.per_token_rates(backend("no-such-model-anywhere")) == (0.0, 0.0)
    fixed = backend("gemini-2.5-pro", price={"input_per_mtok": 1.0, "output_per_mtok": 2.0})
    assert pricing.per_token_rates(fixed, 300_000) == pytest.approx((1e-6, 2e-6))


def test_admission_reserves_at_the_tier_of_the_estimate():
    b = backend("gemini-2.5-pro")
    assert pricing.micro_usd(b, 1_000, {}) == int(1_000 * 1e-5 * 1_000_000) + 1
    assert pricing.micro_usd(b, 300_000, {}) == int(300_000 * 1.5e-5 * 1_000_000) + 1


def test_a_prompt_size_litellm_will_not_price_keeps_the_tiers_found_below_it(monkeypatch):
    pricing.per_token_rates(backend("gpt-4o-mini"))  # imports litellm the way the gateway does
    import litellm

    real = litellm.cost_per_token

    def refusing(*, model, prompt_tokens, completion_tokens):
        if prompt_tokens > 150_000:
            raise ValueError("no price for that size")
        return real(model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    monkeypatch.setattr(litellm, "cost_per_token", refusing)
    ((start, rate_in, rate_out),) = pricing.litellm_tiers("gemini-2.5-pro")
    assert start == 0 and (rate_in, rate_out) == pytest.approx((1.25e-6, 1e-5))


def test_the_prebuilt_table_is_what_litellm_answers():
    # Built by scripts/build_price_tiers.py; a litellm upgrade without a rebuild fails here (the
    # gateway would quietly fall back to the slow path).
    import gzip
    import json
    from importlib.metadata import version

    from gateway.policy.loader import load_policy_set

    data = json.loads(gzip.decompress(pricing.TABLE_PATH.read_bytes()))
    assert data["litellm"] == version("litellm"), "rebuild it: scripts/build_price_tiers.py"
    table = pricing._table()
    assert len(table) == len(data["models"]) > 5_000
    shipped = {b.model for b in load_policy_set(ROOT / "policies").all_backends() if b.adapter != "local_moe"}
    assert shipped <= set(table)
    names = sorted(table)
    for name in sorted(shipped | set(names[:: len(names) // 150])):
        assert table[name] == pricing.litellm_tiers(name), name  # floats survive JSON exactly


def test_pricing_a_mapped_model_does_not_import_litellm():
    code = (
        "import sys; from gateway import pricing; from gateway.policy import Backend;"
        "r = pricing.per_token_rates(Backend(name='b', model='openai/gpt-4o-mini'));"
        "print(r, 'litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(1.5e-07,", "6e-07)", "False"]


def test_off_peak_rates_do_not_follow_the_clock():
    # litellm prices some models (DeepSeek's) by hour and weekday; the table and the fallback take
    # the dearest hour, so a budget does not depend on when it was computed.
    from datetime import UTC, datetime, timedelta

    import litellm
    from litellm._internal_context import pinned_billing_time

    pricing.litellm_tiers("gpt-4o")  # sets the local cost map before litellm reads it
    model = "deepseek/deepseek-v4-flash"
    if not (litellm.model_cost.get(model) or {}).get("off_peak_pricing"):
        pytest.skip("this litellm lists no off-peak pricing")
    seen = set()
    for h in range(0, 7 * 24, 3):
        with pinned_billing_time(datetime(2026, 1, 5, tzinfo=UTC) + timedelta(hours=h, minutes=30)):
            cost_in, _ = litellm.cost_per_token(model=model, prompt_tokens=1_000, completion_tokens=1_000)
        seen.add(cost_in / 1_000)
    assert len(seen) > 1  # the rate does move with the clock
    assert pricing.litellm_tiers(model)[0][1] == max(seen)
