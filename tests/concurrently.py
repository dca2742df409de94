"""Calls made really at once: one thread each, released together by a barrier, so their
reads and writes interleave the way concurrent requests' do (a loop of calls never
races; a thread pool without the barrier rarely does)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def at_once(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Each call's result, in order; the first exception raised is re-raised."""
    barrier = threading.Barrier(len(calls))

    def released(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(released, call) for call in calls]
        return [f.result() for f in futures]
