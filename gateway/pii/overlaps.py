"""One entity per stretch of text: how overlapping detections are merged before anything is replaced.

Pure bookkeeping on `Entity` spans, without Presidio or spaCy, so that code which only merges
entities found elsewhere (the transform's field-boundary windows) need not import the analyzer.
"""

from __future__ import annotations

from gateway.pii.entities import Entity


def resolve_overlaps(entities: list[Entity]) -> list[Entity]:
    """One entity per stretch of text, so that replacements never collide.

    Overlapping detections form a cluster covering their union (scrubbing more is the safe side).
    Its type is SECRET if any detection is one, else the detection that contains all the others
    (an ADDRESS around its city, an e-mail around a name), else the highest score, then the longest.
    """
    out: list[Entity] = []
    cluster: list[Entity] = []
    end = -1
    for e in sorted(entities, key=lambda e: (e.start, -e.end)):
        if cluster and e.start >= end:
            out.append(_pick(cluster))
            cluster = []
        cluster.append(e)
        end = max(end, e.end) if len(cluster) > 1 else e.end
    if cluster:
        out.append(_pick(cluster))
    return out


def _pick(cluster: list[Entity]) -> Entity:
    if len(cluster) == 1:
        return cluster[0]
    start = min(e.start for e in cluster)
    end = max(e.end for e in cluster)
    # A secret is a risk signal (blocked by default): nothing that overlaps it may hide it.
    secrets = [e for e in cluster if e.type == "SECRET"]
    containers = [e for e in cluster if e.start == start and e.end == end]
    best = max(secrets or containers or cluster, key=lambda e: (e.score, e.end - e.start))
    return Entity(best.type, start, end, max(e.score for e in cluster))
