"""Preallocated KV cache with one slot per concurrent sequence.

Slots let continuous batching work without copying caches around: a request keeps its slot from
prefill to its last token, and a decode step attends over `slot[:length]` for each row of the
batch. A per-position `valid` bit masks left padding written by a padded batched prefill.
MLA layers cache the compressed latent (kv_lora_rank + rope dims) instead of full keys/values,
which is what makes DeepSeek's attention cheap to cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from local_moe.config import ModelArgs


class KVCache:
    def __init__(
        self, args: ModelArgs, max_slots: int, max_seq: int, device: torch.device, dtype: torch.dtype
    ):
        self.max_slots = max_slots
        self.max_seq = max_seq
        self.mla = args.mla
        if args.mla:
            width = args.kv_lora_rank + args.qk_rope_head_dim
            self.latent = [
                torch.zeros(max_slots, max_seq, width, device=device, dtype=dtype)
                for _ in range(args.num_layers)
            ]
        else:
            shape = (max_slots, args.num_kv_heads, max_seq, args.head_dim)
            self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(args.num_layers)]
            self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(args.num_layers)]
        self.valid = torch.zeros(max_slots, max_seq, dtype=torch.bool, device=device)

    def nbytes(self) -> int:
        tensors = self.latent if self.mla else self.k + self.v
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class Step:
    """Where one forward call reads and writes the cache: row b of the batch is slot `slots[b]`, and
    its T new tokens land at cache indices `starts[b] .. starts[b]+T-1`."""

    cache: KVCache
    slots: list[int]
    starts: list[int]
    slot_t: torch.Tensor  # [B] long: `slots` as a tensor, built once per step
    slot_idx: torch.Tensor  # [B, T] long
    pos_idx: torch.Tensor  # [B, T] long
    mask: torch.Tensor  # [B, 1, T, L] bool, True = may attend
    length: int  # L: keys visible to this step
    contiguous: bool  # slots form a range, so reads are views instead of gathers

    @classmethod
    def build(
        cls,
        cache: KVCache,
        slots: list[int],
        starts: list[int],
        num_new: int,
        attn_mask: torch.Tensor | None = None,
    ) -> Step:
        device = cache.valid.device
        batch = len(slots)
        length = max(starts) + num_new
        if length > cache.max_seq:
            raise ValueError(f"sequence of {length} tokens exceeds the cache ({cache.max_seq})")
        slot_t = torch.tensor(slots, device=device)
        start_t = torch.tensor(starts, device=device)
        offsets = torch.arange(num_new, device=device)
        pos_idx = start_t[:, None] + offsets[None, :]
        slot_idx = slot_t[:, None].expand(batch, num_new)
        new_valid = (
            torch.ones(batch, num_new, dtype=torch.bool, device=device)
            if attn_mask is None
            else attn_mask.to(device=device, dtype=torch.bool)
        )
        cache.valid[slot_idx, pos_idx] = new_valid
        keys = torch.arange(length, device=device)
        contiguous = slots == list(range(slots[0], slots[0] + batch))
        valid = (
            cache.valid[slots[0] : slots[0] + batch, :length] if contiguous else cache.valid[slot_t, :length]
        )
        causal = keys[None, None, :] <= pos_idx[:, :, None]  # [B, T, L]
        # A query always sees itself, so a padding row never softmaxes over nothing (NaN).
        own = keys[None, None, :] == pos_idx[:, :, None]
        mask = causal & (valid[:, None, :] | own)
        return cls(cache, slots, starts, slot_t, slot_idx, pos_idx, mask[:, None], length, contiguous)

    def rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """This step's rows of a per-slot tensor (slice it to the visible length first: gathers copy)."""
        if self.contiguous:
            return tensor[self.slots[0] : self.slots[0] + len(self.slots)]
        return tensor[self.slot_t]
