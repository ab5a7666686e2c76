"""caffelite/layers/_im2col.py's BorderedInput: the input inside a constant border, in its own buffer or a scratch."""

import numpy as np
import pytest

from caffelite.layers._im2col import BorderedInput, Workspace


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
