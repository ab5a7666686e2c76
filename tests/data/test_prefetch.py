"""caffelite.data.prefetch: ordered batches from a daemon thread, errors re-raised, clean shutdown."""

import itertools
import threading
import time

import pytest

from caffelite.data.prefetch import Prefetcher


def test_batches_arrive_in_order_and_the_queue_is_bounded():
    counter = itertools.count()
    prefetcher = Prefetcher(lambda: next(counter), depth=3)
    try:
        time.sleep(0.3)
        assert prefetcher._queue.qsize() == 3  # the worker waits for room instead of running ahead
        assert [prefetcher.next() for _ in range(10)] == list(range(10))
        assert prefetcher._thread.daemon
    finally:
        assert prefetcher.close()
    assert not prefetcher.alive


def test_the_loader_error_is_raised_by_next_every_time():
    calls = itertools.count()
    error = OSError("disk gone")

    def load():
        if next(calls) == 2:
            raise error
        return "batch"

    prefetcher = Prefetcher(load, depth=1)
    try:
        assert prefetcher.next() == "batch" and prefetcher.next() == "batch"
        for _ in range(2):
            with pytest.raises(OSError) as caught:
                prefetcher.next()
            assert caught.value is error
        prefetcher._thread.join(5)
        assert not prefetcher.alive  # the worker ends after a failure
    finally:
        prefetcher.close()


def test_close_while_the_worker_waits_for_room_or_for_the_loader():
    release = threading.Event()

    def slow():
        release.wait(0.5)
        return 1

    for loader in (lambda: 1, slow):
        prefetcher = Prefetcher(loader, depth=1)
        time.sleep(0.1)
        started = time.perf_counter()
        assert prefetcher.close()
        assert time.perf_counter() - started < 2
        with pytest.raises(RuntimeError, match="closed"):
            prefetcher.next()
