"""Memory-bound passes over a batch, split across the cores.

BLAS already runs the matrix products on every core; the passes around them (im2col, col2im, pooling,
element-wise layers) are numpy loops that use one. numpy releases the GIL inside those loops, so slices of the
batch handed to a few threads run side by side (measured here: about 1.7x on 2 cores for im2col and ReLU).

The thread count is CAFFELITE_NUM_THREADS, else OMP_NUM_THREADS (which MPI launchers and users set to share a
machine between processes), else the cores this process may use.
"""

import os
from concurrent.futures import ThreadPoolExecutor

from caffelite.device import usable_cores

# Below this many elements per pass a second thread costs more than it saves.
MIN_ELEMENTS = 1 << 15
# The same for `elementwise`'s passes, one or two vectorized operations per element. Waking the second thread and
# waiting for it costs ~150 us on the 2-core AMD VM, about what one thread takes for 2^20 such elements: np.add
# over 2^20 floats took 213 us alone and 305 us on two threads, over 2^21 868 and 497 us.
ELEMENTWISE_MIN_ELEMENTS = 1 << 21

_pool = None
_pool_size = 0


def thread_count():
    for name in ("CAFFELITE_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return usable_cores()


def over_batch(batch, body, elements, minimum=None):
    """Call body(start, stop) on slices covering range(batch), concurrently when `elements` (the size of the
    pass) reaches `minimum` (MIN_ELEMENTS if None). The slices must touch disjoint memory. Exceptions propagate
    to the caller."""
    threads = min(thread_count(), batch)
    if threads <= 1 or elements < (MIN_ELEMENTS if minimum is None else minimum):
        body(0, batch)
        return
    bounds = [batch * i // threads for i in range(threads + 1)]
    pool = _executor(threads - 1)
    others = [pool.submit(body, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    try:
        body(bounds[0], bounds[1])
    finally:
        for future in others:
            future.result()


def _forget_pool():
    # A forked child has only the thread that forked: the parent's workers do not exist there.
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor(size):
    global _pool, _pool_size
    if _pool is None or _pool_size < size:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="caffelite-batch")
        _pool_size = size
    return _pool


def copy_split(target, source, axis=0):
    """target[...] = source, slices along `axis` (a batch axis of both) copied on several threads."""

    def body(lo, hi):
        index = (slice(None),) * axis + (slice(lo, hi),)
        target[index] = source[index]

    over_batch(target.shape[axis], body, target.size)


def elementwise(body, *arrays, minimum=None):
    """body(*slices) on matching slices of same-sized C-contiguous arrays (viewed flat), on several threads from
    `minimum` elements (ELEMENTWISE_MIN_ELEMENTS if None); arrays that are not contiguous go to body whole."""
    if not all(a.flags.c_contiguous for a in arrays):
        body(*arrays)
        return
    flats = [a.reshape(-1) for a in arrays]
    size = flats[0].size
    over_batch(size, lambda lo, hi: body(*(f[lo:hi] for f in flats)), size,
               ELEMENTWISE_MIN_ELEMENTS if minimum is None else minimum)
