"""Combining: the threads of one process that have something to send at the same moment send it
together, in one call made by one of them.

A thread hands its request to :meth:`Combiner.submit`. When fewer than ``max_in_flight`` calls
are in flight, it becomes a leader at once and sends the requests waiting at that moment (its own
among them) with ``flush``; otherwise it waits. When the leader's call returns, it hands the leadership to the
first waiting thread (which sends everything that waited) and returns with its own answer, so no
thread ever works for others after its own request was answered, and nothing waits for a timer:
alone, a thread sends its request at once; under load, requests gather while a call is in flight
(as group commit gathers commits). ``flush`` receives the batch and returns one answer per request,
in order, or raises; an exception reaches every thread of that batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Ans = TypeVar("Ans")


class _Slot(Generic[Req, Ans]):
    __slots__ = ("answer", "error", "lead", "ready", "request")

    def __init__(self, request: Req) -> None:
        self.request = request
        self.ready = threading.Event()
        self.lead = False
        self.answer: Ans | None = None
        self.error: BaseException | None = None


class Combiner(Generic[Req, Ans]):
    """Sends the requests of concurrent threads in batches of whatever waited (see the module)."""

    def __init__(self, flush: Callable[[Sequence[Req]], Sequence[Ans]], max_in_flight: int = 1) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._flush = flush
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._waiting: list[_Slot[Req, Ans]] = []
        self._leading = 0  # calls in flight
        #: Batches sent and requests in them, since start (for tests and the benchmark).
        self.batches = 0
        self.requests = 0

    def submit(self, request: Req) -> Ans:
        slot: _Slot[Req, Ans] = _Slot(request)
        with self._lock:
            lead = self._leading < self.max_in_flight
            if lead:
                self._leading += 1
            else:
                self._waiting.append(slot)
        if not lead:
            slot.ready.wait()
            if not slot.lead:
                return self._answer(slot)
        with self._lock:  # a leader sends its own request and everything waiting now
            batch, self._waiting = [slot, *self._waiting], []
        try:
            self._send(batch)
        finally:
            with self._lock:
                if self._waiting:  # hand over: the first waiting thread sends the next batch
                    # (taken off the list, so that no other leader hands over to it as well)
                    nxt = self._waiting.pop(0)
                    nxt.lead = True
                    nxt.ready.set()
                else:
                    self._leading -= 1
        return self._answer(slot)

    def _send(self, batch: list[_Slot[Req, Ans]]) -> None:
        with self._lock:
            self.batches += 1
            self.requests += len(batch)
        try:
            answers = list(self._flush([s.request for s in batch]))
            if len(answers) != len(batch):
                raise RuntimeError(f"combiner: {len(answers)} answers for {len(batch)} requests")
        except BaseException as exc:  # noqa: BLE001 - every thread of the batch gets the error and raises it
            for s in batch:
                s.error = exc
                s.lead = False
                s.ready.set()
            return
        for s, answer in zip(batch, answers, strict=True):
            s.answer = answer
            s.lead = False
            s.ready.set()

    @staticmethod
    def _answer(slot: _Slot[Req, Ans]) -> Ans:
        if slot.error is not None:
            raise slot.error
        return slot.answer  # type: ignore[return-value]
