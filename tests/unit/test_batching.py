"""The micro-batcher: every caller gets its own results, concurrent calls share passes, errors
reach every caller of the failed pass, and nobody waits forever."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.batching import MicroBatcher


def test_a_lone_call_runs_at_once_and_keeps_order():
    seen = []

    def square(items):
        seen.append(list(items))
        return [x * x for x in items]

    b = MicroBatcher(square)
    assert b([3, 1, 2]) == [9, 1, 4]
    assert b([]) == []
    assert seen == [[3, 1, 2]] and b.passes == 1 and b.items == 3


def test_concurrent_calls_share_passes_and_get_their_own_results():
    started = threading.Event()

    def slow_double(items):
        started.set()
        time.sleep(0.02)  # a pass long enough for the other callers to queue behind it
        return [2 * x for x in items]

    b = MicroBatcher(slow_double, max_items=1000)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda k: (k, b([k, k + 1000])), range(64)))
    for k, got in results:
        assert got == [2 * k, 2 * (k + 1000)]
    assert b.items == 128
    assert b.passes < 64  # calls that arrived during a pass were carried together


def test_max_items_splits_passes_and_no_call_is_left_behind():
    sizes = []

    def identity(items):
        sizes.append(len(items))
        time.sleep(0.005)
        return list(items)

    b = MicroBatcher(identity, max_items=5)
    with ThreadPoolExecutor(12) as pool:
        # calls of 4 items: two never fit one pass of 5, so a leader's own call may wait for the next
        results = list(pool.map(lambda k: b([k] * 4), range(40)))
    assert results == [[k] * 4 for k in range(40)]
    assert set(sizes) == {4}  # one call of 4 per pass: two would be 8 > 5


def test_an_oversized_call_runs_alone():
    b = MicroBatcher(lambda items: [x + 1 for x in items], max_items=2)
    assert b(list(range(10))) == list(range(1, 11))


def test_an_error_reaches_every_caller_of_the_pass_and_the_next_pass_works():
    gate = threading.Event()
    calls = []

    def flaky(items):
        calls.append(list(items))
        if len(calls) == 1:
            gate.wait(1)  # hold the first pass so the others queue up behind it
            return list(items)
        if any(x < 0 for x in items):
            raise ValueError("bad input")
        return list(items)

    b = MicroBatcher(flaky, max_items=100)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(b, [0])
        while not calls:
            time.sleep(0.001)
        bad = pool.submit(b, [-1])
        good = pool.submit(b, [7])
        time.sleep(0.02)
        gate.set()
        assert first.result(2) == [0]
        with pytest.raises(ValueError):
            bad.result(2)
        # `good` shared the failing pass: it fails too, as if its model had failed for it
        with pytest.raises(ValueError):
            good.result(2)
    assert b([5]) == [5]


def test_a_wrong_number_of_results_is_an_error_not_a_mismatch():
    b = MicroBatcher(lambda items: [1])
    with pytest.raises(RuntimeError, match="2 items"):
        b(["a", "b"])


def test_bounded_wait_gathers_company():
    b = MicroBatcher(lambda items: list(items), max_items=3, max_wait_s=0.5)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(b, [k]) for k in range(3)]
        assert [f.result(2) for f in futures] == [[0], [1], [2]]
    assert b.passes == 1
