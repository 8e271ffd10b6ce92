"""Build `gateway/data/price_tiers.json.gz`: litellm's price tiers for every model its offline map names.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python scripts/build_price_tiers.py

Rerun whenever the litellm pin changes: the gateway uses the table only while the installed litellm
is the version recorded in it, and `tests/unit/test_pricing.py` fails until it is rebuilt. Each model
is priced by `gateway.pricing.litellm_tiers`, the same function the gateway falls back to, under its
map name and under "<provider>/<name>" (the form policies use: "openai/gpt-4o-mini"). A model whose
pricing made litellm open a network connection (some providers try to log in) is left out, so the
gateway keeps asking litellm for it as before; connections are refused while the table is built.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.pricing import TABLE_PATH, litellm_tiers  # noqa: E402


class _NoNetwork:
    """Refuses every connection and remembers that one was tried."""

    def __init__(self) -> None:
        self.tried = False
        self._connect = socket.socket.connect

    def __enter__(self) -> _NoNetwork:
        guard = self

        def refuse(sock, address):
            guard.tried = True
            raise OSError("network refused while building the price table")

        socket.socket.connect = refuse
        return self

    def __exit__(self, *exc) -> None:
        socket.socket.connect = self._connect


def names(model_cost: dict) -> list[str]:
    out = set()
    for name, entry in model_cost.items():
        if name == "sample_spec" or not isinstance(entry, dict):
            continue
        out.add(name)
        provider = entry.get("litellm_provider")
        if isinstance(provider, str) and provider and not name.startswith(provider + "/"):
            out.add(f"{provider}/{name}")
    return sorted(out)


def main() -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    t0 = time.perf_counter()
    models: dict[str, list[list[float]]] = {}
    skipped = []
    for name in names(litellm.model_cost):
        with _NoNetwork() as guard:
            tiers = litellm_tiers(name)
        if guard.tried:
            skipped.append(name)
            continue
        models[name] = [list(t) for t in tiers]
    data = {"litellm": version("litellm"), "models": models}
    TABLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same litellm gives the same bytes
    TABLE_PATH.write_bytes(gzip.compress(json.dumps(data, sort_keys=True).encode("utf-8"), mtime=0))
    priced = sum(1 for t in models.values() if t != [[0, 0.0, 0.0]])
    print(f"litellm {data['litellm']}: {len(models)} names ({priced} priced, {len(models) - priced} at zero), "
          f"{len(skipped)} left out (they tried the network), {time.perf_counter() - t0:.0f} s -> {TABLE_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
