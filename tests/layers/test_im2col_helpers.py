"""caffelite/layers/_im2col.py's BorderedInput (the input inside a constant border, in its own buffer or a scratch)
and the scratch that forward-only layers share."""

import gc
import weakref

import numpy as np
import pytest

from caffelite.layers._im2col import (
    BorderedInput,
    SharedWorkspace,
    Workspace,
    release_shared_workspace,
    workspace_of,
)


def expected(x, before, size, fill):
    out = np.full(x.shape[:x.ndim - len(size)] + tuple(size), fill, dtype=x.dtype)
    out[(Ellipsis,) + tuple(slice(b, b + n) for b, n in zip(before, x.shape[x.ndim - len(size):]))] = x
    return out


# (input shape, before, bordered size): padding on both sides, overhang on one, 1-D and 3-D.
GEOMETRIES = [((2, 3, 4, 5), (1, 2), (6, 10)), ((2, 3, 5, 5), (0, 0), (6, 6)), ((3, 7), (2,), (12,)),
              ((1, 2, 3, 3, 3), (1, 0, 2), (5, 4, 7))]


@pytest.mark.parametrize("shape, before, size", GEOMETRIES)
@pytest.mark.parametrize("fill", [0.0, -np.inf])
def test_a_dirty_scratch_gets_its_whole_border_rewritten(shape, before, size, fill):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    scratch = Workspace()
    bordered = BorderedInput(fill)
    for garbage in (np.nan, 7.0):  # another layer left its values in the shared scratch
        scratch.get("bordered", (10_000,), np.float32).fill(garbage)
        np.testing.assert_array_equal(bordered.load(x, before, size, scratch), expected(x, before, size, fill))


@pytest.mark.parametrize("shape, before, size", GEOMETRIES)
def test_flat_with_a_tail_and_an_own_buffer(shape, before, size):
    x = np.random.default_rng(1).normal(size=shape)
    bordered = BorderedInput(-1.0)
    flat = bordered.load_flat(x, before, size, tail=3)
    want = expected(x, before, size, -1.0)
    np.testing.assert_array_equal(flat[:want.size].reshape(want.shape), want)
    np.testing.assert_array_equal(flat[want.size:], [-1.0] * 3)
    np.testing.assert_array_equal(bordered.load(2 * x, before, size), expected(2 * x, before, size, -1.0))


def test_no_border_returns_the_input_itself():
    x = np.zeros((2, 3, 4))
    assert BorderedInput(0).load(x, (0, 0), (3, 4)) is x


def _owned_bytes(work):
    return sum(block.nbytes for block in work._blocks)


def test_the_shared_scratch_lends_one_buffer_to_one_layer_at_a_time():
    work, first, second = SharedWorkspace(), object(), object()
    a = work.lend_to(first).get("cols", (100,), np.float32)
    b = work.lend_to(first).get("out", (10, 20), np.float64)
    a[...], b[...] = 1, 2
    # One layer's names never overlap; asking again for a name (no larger) gives the same memory.
    assert not np.shares_memory(a, b) and np.all(a == 1)
    assert np.shares_memory(work.get("cols", (50,), np.float32), a)
    assert b.dtype == np.float64 and b.shape == (10, 20) and b.flags.c_contiguous
    # The first turn outgrew the empty buffer block by block; the next turn gets it merged into one, and the
    # arrays it takes start where the last layer's did.
    assert _owned_bytes(work) == 400 + 1600
    c = work.lend_to(second).get("phases", (300,), np.float32)
    assert len(work._blocks) == 1 and _owned_bytes(work) == 448 + 1600  # 400 rounded up to a cache line
    assert np.shares_memory(c, work._blocks[0][:1200])
    # A turn that fits takes nothing more.
    work.lend_to(first).get("x", (400,), np.float32)
    work.get("y", (100,), np.float32)
    assert _owned_bytes(work) == 2048


def test_an_outgrown_turn_keeps_its_earlier_arrays():
    work, layer = SharedWorkspace(), object()
    work.lend_to(object()).get("big", (64,), np.uint8)
    small = work.lend_to(layer).get("a", (8,), np.float32)
    small[...] = 3
    larger = work.get("a", (100,), np.float32)  # more than the buffer: a block of its own
    larger[...] = 4
    assert np.all(small == 3) and not np.shares_memory(small, larger)
    assert np.shares_memory(work.get("a", (100,), np.float32), larger)


class _Layer:
    def __init__(self, need_backward):
        self.need_backward = need_backward
        self._own_work = Workspace()


def test_the_shared_scratch_does_not_keep_its_last_layer_alive():
    layer = _Layer(need_backward=False)
    workspace_of(layer).get("cols", (10,), np.float32)
    gone = weakref.ref(layer)
    del layer
    gc.collect()
    assert gone() is None


def test_layers_that_run_backward_keep_their_own_and_the_shared_one_can_be_released():
    layer = _Layer(need_backward=True)
    assert workspace_of(layer) is layer._own_work
    forward_only = _Layer(need_backward=False)
    shared = workspace_of(forward_only)
    assert isinstance(shared, SharedWorkspace) and workspace_of(_Layer(False)) is shared
    release_shared_workspace()
    assert workspace_of(forward_only) is not shared
