"""Continuous-batching generation engine.

One background thread owns the model and the KV cache. Between decode steps it admits waiting
requests (prefill, first token) into free cache slots, so a request that arrives while others are
decoding joins the running batch at the next step instead of waiting for the batch to finish.
Each decode step runs every active request as one row of one batched forward.

Callers use `Engine.stream(...)`, an async iterator of `Event`s fed from the thread through the
caller's event loop. Abandoning the iterator (client disconnect, `aclose`, cancellation) marks the
request cancelled; the thread drops it before the next step and its slot is free again.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import torch

from local_moe.cache import KVCache, Step
from local_moe.model import Transformer
from local_moe.moe import RoutingRecord
from local_moe.sampling import SamplingParams, make_generator, sample
from local_moe.stats import LayerCounts
from local_moe.tokenizer import IncrementalDecoder, Tokenizer


@dataclass
class Event:
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "stop", "length", or "error" on the last event
    prompt_tokens: int = 0
    completion_tokens: int = 0
    experts: dict[str, Any] | None = None  # this request's expert statistics, on the last event
    error: str | None = None


@dataclass
class Result:
    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    experts: dict[str, Any] | None


class _Request:
    def __init__(
        self,
        rid: int,
        prompt: list[int],
        params: SamplingParams,
        loop: asyncio.AbstractEventLoop,
        tokenizer: Tokenizer | None,
        stats: LayerCounts | None,
    ):
        self.id = rid
        self.prompt = prompt
        self.params = params
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.generator = make_generator(params)
        self.decoder = IncrementalDecoder(tokenizer) if tokenizer is not None else None
        self.slot = -1
        self.length = 0  # tokens in this request's cache slot
        self.last = 0  # most recent token, the next decode step's input
        self.generated: list[int] = []
        self.text = ""
        self.sent = 0  # characters of `text` already emitted
        self.cancelled = False
        self.stats = LayerCounts(stats.layers, stats.num_experts) if stats is not None else None

    def emit(self, event: Event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the caller's loop is gone: nobody is listening any more
            self.cancelled = True


class Engine:
    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer | None = None,
        *,
        max_batch: int = 8,
        max_seq: int = 2048,
        record_experts: bool = True,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_seq = max_seq
        self.cache = KVCache(model.args, max_batch, max_seq, model.device, model.dtype)
        self.eos_ids: set[int] = set(model.args.eos_token_ids) | (tokenizer.eos_ids if tokenizer else set())
        moe_layers = [i for i, is_moe in enumerate(model.args.moe_layers) if is_moe]
        self.stats = (
            LayerCounts(moe_layers, model.args.num_experts) if record_experts and moe_layers else None
        )
        self._pending: deque[_Request] = deque()
        self._active: dict[int, _Request] = {}  # slot -> request
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._stopped = False
        self.steps = 0
        self.max_batch_seen = 0
        self._thread = threading.Thread(target=self._run, name="local-moe-engine", daemon=True)
        self._thread.start()

    # ---- caller side -------------------------------------------------------------------------
    async def stream(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[Event]:
        if not prompt:
            raise ValueError("empty prompt")
        if len(prompt) >= self.max_seq:
            raise ValueError(f"prompt of {len(prompt)} tokens does not fit the {self.max_seq}-token context")
        req = _Request(
            next(self._ids), list(prompt), params, asyncio.get_running_loop(), self.tokenizer, self.stats
        )
        with self._cond:
            if self._stopped:
                raise RuntimeError("engine is closed")
            self._pending.append(req)
            self._cond.notify()
        try:
            while True:
                event = await req.queue.get()
                yield event
                if event.finish_reason is not None:
                    return
        finally:
            # Reached on normal completion too; for an abandoned stream this frees the slot.
            with self._cond:
                req.cancelled = True
                self._cond.notify()

    async def complete(self, prompt: list[int], params: SamplingParams) -> Result:
        parts: list[str] = []
        ids: list[int] = []
        last = Event()
        events = self.stream(prompt, params)
        try:
            async for event in events:
                parts.append(event.text)
                ids.extend(event.token_ids)
                last = event
        finally:
            await events.aclose()  # on cancellation (a caller's timeout) this frees the slot now, not at GC
        if last.finish_reason == "error":
            raise RuntimeError(last.error or "generation failed")
        return Result(
            "".join(parts),
            ids,
            last.finish_reason or "stop",
            last.prompt_tokens,
            last.completion_tokens,
            last.experts,
        )

    def expert_stats(self) -> dict[str, Any]:
        return (
            self.stats.summary() if self.stats is not None else {"tokens": 0, "moe_layers": 0, "layers": []}
        )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    @property
    def load(self) -> dict[str, int]:
        with self._cond:
            return {"active": len(self._active), "waiting": len(self._pending), "max_batch": self.max_batch}

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=30)

    # ---- engine thread -----------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                while not self._stopped and not self._pending and not self._active:
                    self._cond.wait()
                if self._stopped:
                    break
                for slot in [s for s, r in self._active.items() if r.cancelled]:
                    del self._active[slot]
                admit: list[_Request] = []
                free = sorted(set(range(self.max_batch)) - set(self._active))
                while self._pending and free:
                    req = self._pending.popleft()
                    if req.cancelled:
                        continue
                    req.slot = free.pop(0)
                    self._active[req.slot] = req
                    admit.append(req)
                batch = [r for _, r in sorted(self._active.items()) if r not in admit]
            try:
                with torch.inference_mode():
                    for req in admit:
                        self._prefill(req)
                    if batch:
                        self._decode(batch)
            except Exception as exc:  # a failed step fails its requests, never the thread
                for req in admit + batch:
                    self._finish(req, "error", error=type(exc).__name__)
        with self._cond:
            for req in list(self._active.values()) + list(self._pending):
                req.emit(Event(finish_reason="error", error="engine closed"))
            self._active.clear()
            self._pending.clear()

    def _forward(self, reqs: list[_Request], tokens: torch.Tensor, starts: list[int]) -> torch.Tensor:
        step = Step.build(self.cache, [r.slot for r in reqs], starts, tokens.shape[1])
        record = RoutingRecord() if self.stats is not None else None
        logits = self.model(tokens, step=step, record=record, last_only=True)
        if record is not None and record.counts:
            counts = torch.stack(record.counts, dim=1).cpu()  # [B, layers, E]
            entropy = torch.stack(record.entropy, dim=1).cpu()  # [B, layers]
            n = tokens.shape[1]
            for b, req in enumerate(reqs):
                req.stats.add(counts[b], entropy[b], n)
                self.stats.add(counts[b], entropy[b], n)
        self.steps += 1
        return logits

    def _prefill(self, req: _Request) -> None:
        tokens = torch.tensor([req.prompt], device=self.model.device)
        logits = self._forward([req], tokens, [0])
        req.length = len(req.prompt)
        self._accept(req, sample(logits[0], req.params, req.generator))

    def _decode(self, batch: list[_Request]) -> None:
        batch = [r for r in batch if not r.cancelled]
        if not batch:
            return
        self.max_batch_seen = max(self.max_batch_seen, len(batch))
        tokens = torch.tensor([[r.last] for r in batch], device=self.model.device)
        logits = self._forward(batch, tokens, [r.length for r in batch])
        greedy = [r.params.greedy for r in batch]
        picks = torch.argmax(logits, dim=-1).tolist() if any(greedy) else []
        for b, req in enumerate(batch):
            req.length += 1
            token = picks[b] if greedy[b] else sample(logits[b], req.params, req.generator)
            self._accept(req, token)

    def _accept(self, req: _Request, token: int) -> None:
        p = req.params
        if token in self.eos_ids and not p.ignore_eos:
            self._finish(req, "stop")
            return
        req.generated.append(token)
        req.last = token
        if req.decoder is not None:
            req.text += req.decoder.push(token)
        if p.stop:
            cut = min(
                (i for s in p.stop if (i := req.text.find(s, max(0, req.sent - len(s)))) >= 0), default=-1
            )
            if cut >= 0:
                req.text = req.text[:cut]
                self._finish(req, "stop")
                return
        if len(req.generated) >= p.max_tokens or req.length + 1 >= self.max_seq:
            self._finish(req, "length", token_ids=[token])
            return
        # Hold back a tail that could still become a stop string.
        hold = max((k for s in p.stop for k in range(1, len(s)) if req.text.endswith(s[:k])), default=0)
        upto = len(req.text) - hold
        if upto > req.sent or req.decoder is None:
            req.emit(Event(text=req.text[req.sent : upto], token_ids=[token]))
            req.sent = upto
        else:
            req.emit(Event(token_ids=[token]))

    def _finish(
        self, req: _Request, reason: str, error: str | None = None, token_ids: list[int] | None = None
    ) -> None:
        with self._cond:
            self._active.pop(req.slot, None)
        experts = req.stats.summary(per_expert=True) if req.stats is not None else None
        req.emit(
            Event(
                text=req.text[req.sent :],
                token_ids=token_ids or [],
                finish_reason=reason,
                prompt_tokens=len(req.prompt),
                completion_tokens=len(req.generated),
                experts=experts,
                error=error,
            )
        )
        req.sent = len(req.text)
