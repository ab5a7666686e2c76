"""A background thread that keeps a bounded queue of ready batches (Caffe's BasePrefetchingDataLayer thread)."""

import queue
import threading

_POLL_SECONDS = 0.1


class _Failure:
    def __init__(self, error):
        self.error = error


class Prefetcher:
    """Calls `load_batch()` over and over in a daemon thread and queues up to `depth` results for `next()`.

    All batches come from the one worker thread in order, so any randomness the loader draws from its own generator
    is independent of thread timing. An exception in the loader is re-raised by `next()` (the original exception
    object, with its traceback), and again by every later call. `close()` stops the thread.
    """

    def __init__(self, load_batch, depth=4, name="caffelite-prefetch"):
        self._load_batch = load_batch
        self._queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._failure = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                item = self._load_batch()
            except BaseException as error:  # handed to the consumer, which re-raises it
                item = _Failure(error)
            if not self._put(item) or isinstance(item, _Failure):
                return

    def _put(self, item):
        """Queue `item`, waiting for room; False when asked to stop meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def next(self):
        """The next batch, waiting for it if needed; re-raises the loader's exception."""
        if self._failure is not None:
            raise self._failure.error
        while True:
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
                break
            except queue.Empty:
                if self._stop.is_set():
                    raise RuntimeError("the prefetch thread is closed") from None
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the prefetch thread ended without a batch or an error") from None
        if isinstance(item, _Failure):
            self._failure = item
            raise item.error
        return item

    @property
    def alive(self):
        return self._thread.is_alive()

    def close(self, timeout=10.0):
        """Stop the thread and wait (up to `timeout` seconds) for it; True when it has ended."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        # Drop the queued batches so their memory goes with the thread.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        return not self._thread.is_alive()
