"""Separable 1-D resampling along one axis, shared by Upsample and Interp (nearest and linear rules).

A rule maps every output index i to out[i] = w_lo[i] * x[lo[i]] + w_hi[i] * x[hi[i]] along the axis; 2-D resizes
apply one rule per spatial axis. The adjoint (for backward) sums each output's share back into the inputs it read:
lo and hi never decrease with i, so the outputs reading one input are a contiguous run and np.add.reduceat sums them.
"""

import numpy as np


class AxisResampling:
    """out[..., i, ...] = w_lo[i] * x[..., lo[i], ...] + w_hi[i] * x[..., hi[i], ...] along one axis.

    `w_hi` None means nearest-neighbour: out[i] = x[lo[i]]. `size_in` is the input length along the axis.
    """

    def __init__(self, size_in, lo, hi=None, w_lo=None, w_hi=None):
        self.size_in = int(size_in)
        self.lo = np.asarray(lo, dtype=np.intp)
        self.hi = None if hi is None else np.asarray(hi, dtype=np.intp)
        self.w_lo, self.w_hi = w_lo, w_hi
        for index in (self.lo, self.hi):
            if index is not None and np.any(np.diff(index) < 0):
                raise ValueError("resampling indices must not decrease")

    @property
    def size_out(self):
        return len(self.lo)

    def apply(self, x, axis):
        values = np.take(x, self.lo, axis=axis)
        if self.hi is None:
            return values
        shape = _along(axis, x.ndim)
        values *= self.w_lo.reshape(shape)
        values += np.take(x, self.hi, axis=axis) * self.w_hi.reshape(shape)
        return values

    def adjoint(self, g, axis):
        """The transpose of apply: an array of length size_in along `axis`."""
        shape = list(g.shape)
        shape[axis] = self.size_in
        out = np.zeros(shape, dtype=g.dtype)
        if self.hi is None:
            _scatter_add(out, g, self.lo, axis)
            return out
        weights = _along(axis, g.ndim)
        _scatter_add(out, g * self.w_lo.reshape(weights), self.lo, axis)
        _scatter_add(out, g * self.w_hi.reshape(weights), self.hi, axis)
        return out


def resize(rules, x):
    """x (N, C, H, W) resampled by (row rule, column rule)."""
    rows, cols = rules
    return rows.apply(cols.apply(x, axis=3), axis=2)


def resize_adjoint(rules, g):
    """The transpose of resize: g (N, C, H_out, W_out) summed back onto the input grid."""
    rows, cols = rules
    return cols.adjoint(rows.adjoint(g, axis=2), axis=3)


def _along(axis, ndim):
    """Broadcast shape for per-index weights along `axis`."""
    shape = [1] * ndim
    shape[axis] = -1
    return shape


def _scatter_add(out, values, index, axis):
    """out[..., index[i], ...] += values[..., i, ...] for a non-decreasing index."""
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    sums = np.add.reduceat(values, starts, axis=axis)
    target = [slice(None)] * out.ndim
    target[axis] = index[starts]
    out[tuple(target)] += sums


def nearest(size_in, size_out, scale=None):
    """out[i] = x[i // scale] for an integer scale, else x[floor(i * size_in / size_out)]."""
    i = np.arange(size_out)
    lo = i // scale if scale else (i * size_in) // size_out
    return AxisResampling(size_in, np.minimum(lo, size_in - 1))


def half_pixel_linear(size_in, size_out, ratio, dtype):
    """Linear interpolation with pixel centres aligned: x read at (i + 1/2) * ratio - 1/2, clamped to the input."""
    source = np.maximum((np.arange(size_out) + 0.5) * ratio - 0.5, 0.0)
    lo = np.minimum(np.floor(source).astype(np.intp), size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    w_hi = np.where(hi > lo, source - lo, 0.0).astype(dtype)
    return AxisResampling(size_in, lo, hi, (1 - w_hi).astype(dtype), w_hi)


def corner_aligned_linear(size_in, size_out, dtype):
    """The PSPNet/DeepLab Interp rule: out(i) reads in(i * (size_in - 1) / (size_out - 1)), corners on corners.

    Coordinates are computed in float32 as the forks do (even in a double net), the weights then in `dtype`.
    """
    ratio = np.float32(size_in - 1) / np.float32(size_out - 1) if size_out > 1 else np.float32(0)
    source = ratio * np.arange(size_out, dtype=np.float32)
    lo = source.astype(np.intp)  # truncation, as C's float -> int
    hi = lo + (lo < size_in - 1)
    w_hi = (source - lo.astype(np.float32)).astype(dtype)
    return AxisResampling(size_in, lo, hi, np.asarray(1, dtype=dtype) - w_hi, w_hi)
