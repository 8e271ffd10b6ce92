"""Synchronous batched greedy generation: a padded batch, one prefill, then decode steps.

The serving path is `engine.Engine` (continuous batching); this is the simple loop that tests and
the benchmark use to compare against transformers' `generate`.
"""

from __future__ import annotations

import torch

from local_moe.cache import KVCache, Step
from local_moe.model import Transformer


@torch.inference_mode()
def greedy_generate(
    model: Transformer,
    prompts: list[list[int]],
    max_new_tokens: int,
    eos_ids: set[int] | None = None,
    cache: KVCache | None = None,
) -> list[list[int]]:
    """Left-pads `prompts` into one batch; returns the generated ids of each (stopping at an eos)."""
    device = model.device
    batch, longest = len(prompts), max(len(p) for p in prompts)
    cache = cache or KVCache(model.args, batch, longest + max_new_tokens, device, model.dtype)
    tokens = torch.zeros(batch, longest, dtype=torch.long, device=device)
    mask = torch.zeros(batch, longest, dtype=torch.bool, device=device)
    for b, p in enumerate(prompts):
        tokens[b, longest - len(p) :] = torch.tensor(p, device=device)
        mask[b, longest - len(p) :] = True
    positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    slots = list(range(batch))
    step = Step.build(cache, slots, [0] * batch, longest, mask)
    logits = model(tokens, positions, step, last_only=True)
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    out: list[list[int]] = [[] for _ in prompts]
    done = [False] * batch
    for i in range(max_new_tokens):
        nxt = torch.argmax(logits, dim=-1)
        for b, t in enumerate(nxt.tolist()):
            if not done[b]:
                out[b].append(t)
                done[b] = eos_ids is not None and t in eos_ids
        if all(done) or i == max_new_tokens - 1:
            break
        step = Step.build(cache, slots, [longest + i] * batch, 1)
        logits = model(nxt[:, None], (lengths + i)[:, None], step, last_only=True)
    return out
