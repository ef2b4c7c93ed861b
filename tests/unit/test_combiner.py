"""workers.combiner: requests of threads that arrive while a call is in flight go in the next call,
each thread gets its own answer or the batch's error, and no thread sends for others after its
own request was answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from workers.combiner import Combiner


def wait_until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


class Gate:
    """A flush that records who sent which batch and can be held up."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.release = threading.Event()
        self.release.set()
        self.fail_on = fail_on

    def __call__(self, requests: Sequence[int]) -> list[int]:
        self.batches.append((threading.current_thread().name, list(requests)))
        self.release.wait(10)
        if self.fail_on in requests:
            raise ValueError(f"batch with {self.fail_on}")
        return [r * 10 for r in requests]


def run(combiner: Combiner[int, int], n: int, results: dict[int, object], name: str) -> threading.Thread:
    def go() -> None:
        try:
            results[n] = combiner.submit(n)
        except ValueError as exc:
            results[n] = exc

    t = threading.Thread(target=go, name=name)
    t.start()
    return t


def test_a_thread_alone_sends_at_once() -> None:
    gate = Gate()
    c = Combiner(gate)
    assert [c.submit(i) for i in range(3)] == [0, 10, 20]
    assert [b[1] for b in gate.batches] == [[0], [1], [2]]


def test_requests_arriving_during_a_call_go_together_in_the_next_and_the_first_waiter_sends_it() -> None:
    gate = Gate()
    gate.release.clear()
    c: Combiner[int, int] = Combiner(gate)
    results: dict[int, object] = {}
    threads = [run(c, 1, results, "first")]
    wait_until(lambda: len(gate.batches) == 1, "the first call")
    for n in (2, 3, 4):
        threads.append(run(c, n, results, f"t{n}"))
        wait_until(lambda n=n: len(c._waiting) == n - 1, f"request {n} waiting")
    gate.release.set()
    for t in threads:
        t.join(10)
    assert results == {1: 10, 2: 20, 3: 30, 4: 40}
    # The first thread answered its own request and left; the first waiter sent the rest.
    assert gate.batches == [("first", [1]), ("t2", [2, 3, 4])]
    assert (c.batches, c.requests) == (2, 4)


def test_an_error_reaches_every_thread_of_its_batch_and_only_those() -> None:
    gate = Gate(fail_on=3)
    gate.release.clear()
    c: Combiner[int, int] = Combiner(gate)
    results: dict[int, object] = {}
    threads = [run(c, 1, results, "first")]
    wait_until(lambda: len(gate.batches) == 1, "the first call")
    for n in (2, 3):
        threads.append(run(c, n, results, f"t{n}"))
    wait_until(lambda: len(c._waiting) == 2, "two waiting")
    gate.release.set()
    for t in threads:
        t.join(10)
    assert results[1] == 10
    assert isinstance(results[2], ValueError) and isinstance(results[3], ValueError)
    assert c.submit(5) == 50  # the combiner still works after a failed batch


def test_a_wrong_number_of_answers_is_an_error_not_a_mix_up() -> None:
    c: Combiner[int, int] = Combiner(lambda reqs: [])
    with pytest.raises(RuntimeError, match="0 answers for 1 requests"):
        c.submit(1)


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_many_threads_each_get_their_own_answer(in_flight: int) -> None:
    """Also: never more calls at once than allowed, and none counted as in flight at the end (a
    waiting thread handed the lead by two leaders at once used to leave one call counted forever)."""
    lock = threading.Lock()
    sizes: list[int] = []
    now = [0, 0]  # calls in flight, most seen

    def flush(reqs: Sequence[int]) -> list[int]:
        with lock:
            sizes.append(len(reqs))
            now[0] += 1
            now[1] = max(now)
        time.sleep(0.001)
        with lock:
            now[0] -= 1
        return [r + 1 for r in reqs]

    c: Combiner[int, int] = Combiner(flush, in_flight)
    got: dict[int, list[int]] = {}

    def worker(k: int) -> None:
        got[k] = [c.submit(k * 1000 + i) for i in range(200)]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert {k: v for k, v in got.items()} == {k: [k * 1000 + i + 1 for i in range(200)] for k in range(8)}
    assert sum(sizes) == 1600
    assert now[1] <= in_flight
    assert c._leading == 0 and c._waiting == []
