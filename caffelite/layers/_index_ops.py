"""Index inputs shared by BatchReindex and Embed: reading float blobs as row indices, and summing rows per index."""

import numpy as np

from caffelite.errors import ShapeError


def read_indices(layer, values, limit, what, integral):
    """`values` (floats) as int64 row indices in [0, limit), cast toward zero as Caffe's static_cast does.

    With `integral`, a value with a fractional part is refused (Caffe checks this only in debug builds).
    """
    flat = values.reshape(-1)
    bad = ~((flat >= 0) & (flat < limit))
    if bad.any():
        raise ShapeError(f"{layer.describe()}: {what} {float(flat[bad][0]):g} is outside [0, {limit})")
    indices = flat.astype(np.int64)
    if integral:
        fractional = indices != flat
        if fractional.any():
            raise ShapeError(f"{layer.describe()}: {what} {float(flat[fractional][0]):g} is not an integer")
    return indices


def sum_rows_by_index(rows, indices):
    """(targets, sums): each distinct index once (ascending), and the sum of the `rows` that carry it.

    One stable sort groups equal indices together, and np.add.reduceat sums each group, so no element is written
    twice and nothing needs an unbuffered scatter.
    """
    if indices.size == 0:
        return indices, rows[:0]
    order = np.argsort(indices, kind="stable")
    ordered = indices[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.add.reduceat(rows[order], starts, axis=0)
