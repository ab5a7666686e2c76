"""Local response normalization (AlexNet's LRN): each value divided by a power of its neighbours' energy."""

import numpy as np

from caffelite.errors import NetError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import check_image_batch
from caffelite.layers._im2col import Workspace
from caffelite.layers._threads import over_batch
from caffelite.proto import caffe_pb2

_REGION = caffe_pb2.LRNParameter
# Cells per step of `_negative_power`'s float64 work (1 MB). Smaller steps stay in cache but pay numpy's per-call
# overhead more often, and with two threads the calls' starts contend: GoogLeNet's norm2 forward at batch 10 on the
# 2-core VM, 2 threads, took 27.5 ms in steps of 2^14 cells and 20.0 ms in steps of 2^17 (norm1 10.6 -> 7.1 ms;
# on one thread 40.3 -> 37.2 ms); 2^18 to 2^20 were no faster.
_POWER_CHUNK = 1 << 17
# Cells per step of the forward (whole images, at least one): large enough that numpy's calls cost little against
# their work (CaffeNet's 13x13 norm2 one image at a time: 3.1 -> 3.4 ms), small enough that the step's buffers stay
# a few MB.
_STEP_CELLS = 1 << 18


@register_layer("LRN")
class LRN(Function):
    """y = x s^-beta, s = k + alpha/n sum_{|c'-c| <= n/2} x^2 (ACROSS_CHANNELS) or 1 + alpha/n^2 sum_{n x n} x^2.

    Windows are centred and zero-padded. WITHIN_CHANNEL ignores k, as Caffe's Pooling(AVE, pad (n-1)/2) + Power
    construction does: that average always divides by n^2 (padding counts, and no window overhangs the padding).
    In place allowed (the input is kept for backward).
    """

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        lrn = self.param.lrn_param
        self.size = lrn.local_size
        if self.size % 2 == 0:
            raise NetError(f"{self.describe()}: local_size must be odd, got {self.size}")
        self.alpha, self.beta = lrn.alpha, lrn.beta
        self.across = lrn.norm_region == _REGION.ACROSS_CHANNELS
        if self.across:
            self.shift, self.axes = lrn.k, (1,)
        else:
            self.shift, self.axes = 1.0, (2, 3)
        self._scale = None
        self._kept = Workspace()
        self._input = None

    def reshape(self, bottom, top):
        check_image_batch(self, bottom[0].shape)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        self._input = x.copy() if top[0] is bottom[0] and self.need_backward else None
        # Backward reads the scale: it is kept whole then, as Caffe keeps its scale_ blob. Otherwise every thread
        # works through its images a few at a time (_STEP_CELLS) in two buffers of that size, so a deploy net's LRN
        # holds a few MB beyond its blobs instead of three times its input (GoogLeNet's norm2 at batch 10: 24 MB
        # each).
        self._scale = self._kept.get("scale", x.shape, x.dtype) if self.need_backward else None
        # Caffe averages WITHIN_CHANNEL over the n x n window first, then scales by alpha.
        coefficient = self.alpha / self.size if self.across else self.alpha / (self.size * self.size)

        step = max(1, _STEP_CELLS // max(1, x[0].size))

        def normalize(lo, hi):  # images lo:hi; in place safe: an image's x is read before its y is written
            buffers = np.empty((2, min(step, hi - lo)) + x.shape[1:], dtype=x.dtype)
            for start in range(lo, hi, step):
                images = slice(start, min(start + step, hi))
                squares, own = buffers[:, :images.stop - images.start]
                scale = own if self._scale is None else self._scale[images]
                np.square(x[images], out=squares)
                self._window_sum(squares, scale)
                scale *= coefficient
                scale += self.shift
                np.multiply(x[images], _negative_power(scale, self.beta, out=squares), out=y[images])

        over_batch(len(x), normalize, x.size)

    def backward(self, top, propagate_down, bottom):
        """dx = dy s^-beta - (2 alpha beta / N) x window_sum(dy y / s), N = n (across) or n^2 (within)."""
        if not propagate_down[0]:
            return
        x_all = bottom[0].data if self._input is None else self._input
        norm = self.size if self.across else self.size * self.size
        factor = 2 * self.alpha * self.beta / norm
        arrays = (x_all, top[0].grad, top[0].data, self._scale)
        dx_all = bottom[0].grad

        def differentiate(lo, hi):
            x, dy, y, scale = (a[lo:hi] for a in arrays)
            spread = np.empty_like(scale)
            self._window_sum(dy * y / scale, spread)
            spread *= x
            spread *= factor
            np.multiply(dy, _negative_power(scale, self.beta, out=np.empty_like(scale)), out=dx_all[lo:hi])
            dx_all[lo:hi] -= spread

        over_batch(len(x_all), differentiate, x_all.size)

    def _window_sum(self, values, out):
        """out = sum over the centred window of local_size cells on each normalized axis (zeros past the edges)."""
        half = (self.size - 1) // 2
        for number, axis in enumerate(self.axes):
            target = out if number == len(self.axes) - 1 else np.empty_like(values)
            target[...] = values
            length = values.shape[axis]
            for shift in range(1, min(half, length - 1) + 1):
                # Cell i gains its neighbours i + shift and i - shift, where they exist.
                target[_along(axis, 0, length - shift)] += values[_along(axis, shift, length)]
                target[_along(axis, shift, length)] += values[_along(axis, 0, length - shift)]
            values = target


def _negative_power(scale, beta, out):
    """out = scale ** -beta, for C-contiguous scale and out of one shape and dtype; returns out.

    For float32 and beta 0.75 (AlexNet's, and that of every LRN in Caffe's model zoo) it is taken as
    1 / sqrt(s sqrt(s)) in float64, rounded once to float32: s^-0.75 correctly rounded, zeros, infinities and NaN
    included. numpy's float32 power calls the C library's powf cell by cell, ~10 ns each on the 2-core AMD VM, where
    this takes ~4.5 (3M cells, one thread: 19-28 ms against 13-14 ms); LRN is 15-20% of GoogLeNet's forward, most of
    it this power. powf is within 1 ulp and differs from the correctly rounded value in ~0.06-0.09% of cells.
    Caffe's LRN (powf, on a CPU build without MKL) is not reproduced bit for bit anyway: it sums the window as a
    running sum that adds the channel entering it and subtracts the one leaving, so its scale is rounded differently
    from this layer's direct sum before the power is taken.
    """
    if beta != 0.75 or scale.dtype != np.float32:
        return np.power(scale, -beta, out=out)
    flat, flat_out = scale.reshape(-1), out.reshape(-1)
    work = np.empty(min(_POWER_CHUNK, flat.size))
    for lo in range(0, flat.size, _POWER_CHUNK):
        s = flat[lo:lo + _POWER_CHUNK]
        w = work[:len(s)]
        np.sqrt(s, out=w, dtype=np.float64)
        w *= s
        np.sqrt(w, out=w)
        np.divide(1.0, w, out=w)
        flat_out[lo:lo + len(s)] = w
    return out


def _along(axis, start, stop):
    return (slice(None),) * axis + (slice(start, stop),)
