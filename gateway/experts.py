"""Local MoE experts made visible: the cumulative per-layer statistics of every in-process MoE
backend, as Prometheus gauges, an HTTP view and an expert-collapse alarm from the policy's
thresholds (a collapsed router sends most tokens to a few experts: quality drops silently)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Gauge

from gateway.telemetry import REGISTRY

log = logging.getLogger("bulkhead.moe")

CV = Gauge("bulkhead_moe_expert_load_cv", "Coefficient of variation of tokens per expert", ["backend", "layer"],
           registry=REGISTRY)
MAXVIO = Gauge("bulkhead_moe_expert_maxvio", "(max load - mean) / mean", ["backend", "layer"], registry=REGISTRY)
ENTROPY = Gauge("bulkhead_moe_router_entropy", "Normalized router entropy", ["backend", "layer"], registry=REGISTRY)
DEAD = Gauge("bulkhead_moe_dead_experts", "Experts that received no token", ["backend", "layer"], registry=REGISTRY)
COLLAPSE = Gauge("bulkhead_moe_expert_collapse", "1 while the collapse alarm is raised", ["backend"],
                 registry=REGISTRY)


def collapse(stats: dict[str, Any], thresholds) -> str | None:
    """Why the alarm is raised, or None. Needs enough tokens to mean anything."""
    if not stats.get("loaded") or stats.get("tokens", 0) < thresholds.min_tokens:
        return None
    if stats.get("max_cv", 0) > thresholds.max_cv:
        return f"expert load CV {stats['max_cv']:.2f} > {thresholds.max_cv}"
    experts = max(1, stats.get("num_experts", 1) * max(1, stats.get("moe_layers", 1)))
    if stats.get("dead_experts", 0) / experts > thresholds.max_dead_fraction:
        return f"{stats['dead_experts']} dead experts > {thresholds.max_dead_fraction:.0%}"
    return None


def snapshot(gw, policies) -> dict[str, dict[str, Any]]:
    """Stats of every local MoE backend the given policies declare; updates gauges and the alarm."""
    out: dict[str, dict[str, Any]] = {}
    for policy in policies:
        for backend in policy.backends:
            if backend.adapter != "local_moe" or backend.name in out:
                continue
            adapter = gw.adapters.get(backend)
            stats = adapter.expert_stats() if adapter is not None and hasattr(adapter, "expert_stats") else {}
            for row in stats.get("layers", []):
                labels = (backend.name, str(row["layer"]))
                CV.labels(*labels).set(row.get("cv", 0))
                MAXVIO.labels(*labels).set(row.get("max_vio", 0))
                ENTROPY.labels(*labels).set(row.get("entropy", 0))
                DEAD.labels(*labels).set(len(row.get("dead", [])))
            alarm = collapse(stats, policy.moe)
            COLLAPSE.labels(backend.name).set(1 if alarm else 0)
            if alarm and gw.extras.get(("collapse", backend.name)) != alarm:
                log.warning("expert collapse on %s: %s", backend.name, alarm)
            gw.extras[("collapse", backend.name)] = alarm
            out[backend.name] = {**stats, "collapse": alarm}
    return out
