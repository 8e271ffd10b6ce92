"""Dynamic batching of model passes across concurrent requests.

Each request's inspection runs in a worker thread (the event loop never waits on a model). Where
several requests want the same model at once, one forward pass over all their inputs costs less
than one pass each: the fixed cost per call (session dispatch, Python between ops, small GEMMs
that use a core badly) is paid once, and one pass at a time uses the cores better than passes that
fight over them.

`MicroBatcher(fn)` is called like `fn(items)` from any thread. Batching while busy: a call that
finds the model idle runs at once, so a lone request never waits for company; calls that arrive
while a pass is running queue up, and the next pass takes all of them (up to `max_items`). Under
load, batches grow with the arrival rate by themselves; no timer is needed. `max_wait_s` adds an
optional bounded wait for company before a pass (off by default: on one core, waiting idle is
never cheaper than starting).

A pass that raises fails every call in it with that exception: callers see their model's error as
if they had run it alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Call(Generic[T, R]):
    items: Sequence[T]
    done: threading.Event = field(default_factory=threading.Event)
    result: list[R] | None = None
    error: BaseException | None = None


class MicroBatcher(Generic[T, R]):
    """`fn(items) -> results` (one result per item, in order), shared by concurrent callers."""

    def __init__(self, fn: Callable[[list[T]], list[R]], *, max_items: int = 64, max_wait_s: float = 0.0) -> None:
        self._fn = fn
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self._cv = threading.Condition()
        self._queue: list[_Call[T, R]] = []
        self._busy = False
        # What the batching did, for the bench: passes run and items they carried.
        self.passes = 0
        self.items = 0

    def __call__(self, items: Sequence[T]) -> list[R]:
        if not items:
            return []
        call: _Call[T, R] = _Call(items)
        with self._cv:
            self._queue.append(call)
        # Until our call is answered: wait while another thread's pass runs; when none does, lead the
        # next pass over what is queued (ours may not fit in it behind older calls: then again).
        while True:
            with self._cv:
                while self._busy and not call.done.is_set():
                    self._cv.wait()
                if call.done.is_set():
                    return self._result(call)
                self._busy = True
            try:
                if self.max_wait_s > 0:
                    self._gather()
                with self._cv:
                    batch = self._take()
                self._run(batch)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _gather(self) -> None:
        deadline = time.monotonic() + self.max_wait_s
        with self._cv:
            while sum(len(c.items) for c in self._queue) < self.max_items:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cv.wait(left)

    def _take(self) -> list[_Call[T, R]]:
        """Queued calls, oldest first, up to `max_items` items (always at least the first call)."""
        batch, count = [], 0
        while self._queue and (not batch or count + len(self._queue[0].items) <= self.max_items):
            call = self._queue.pop(0)
            batch.append(call)
            count += len(call.items)
        return batch

    def _run(self, batch: list[_Call[T, R]]) -> None:
        flat = [item for call in batch for item in call.items]
        try:
            results = self._fn(flat)
            if len(results) != len(flat):
                raise RuntimeError(f"batched pass returned {len(results)} results for {len(flat)} items")
        except BaseException as exc:  # every caller in the pass gets the error, as if it ran alone
            for call in batch:
                call.error = exc
                call.done.set()
            return
        self.passes += 1
        self.items += len(flat)
        start = 0
        for call in batch:
            call.result = list(results[start : start + len(call.items)])
            start += len(call.items)
            call.done.set()

    @staticmethod
    def _result(call: _Call[T, R]) -> list[R]:
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result
