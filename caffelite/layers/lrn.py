"""Local response normalization (AlexNet's LRN): each value divided by a power of its neighbours' energy."""

import numpy as np

from caffelite.errors import NetError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import check_image_batch
from caffelite.proto import caffe_pb2

_REGION = caffe_pb2.LRNParameter


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
        self._input = None

    def reshape(self, bottom, top):
        check_image_batch(self, bottom[0].shape)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        window = self._window_sum(np.square(x))
        if self.across:
            self._scale = self.shift + (self.alpha / self.size) * window
        else:
            # Caffe averages over the n x n window first, then scales by alpha.
            self._scale = self.shift + self.alpha * (window / (self.size * self.size))
        self._input = x.copy() if top[0] is bottom[0] else None
        top[0].data[...] = x * np.power(self._scale, -self.beta)

    def backward(self, top, propagate_down, bottom):
        """dx = dy s^-beta - (2 alpha beta / N) x window_sum(dy y / s), N = n (across) or n^2 (within)."""
        if not propagate_down[0]:
            return
        x = bottom[0].data if self._input is None else self._input
        dy, y, scale = top[0].grad, top[0].data, self._scale
        norm = self.size if self.across else self.size * self.size
        spread = self._window_sum(dy * y / scale)
        bottom[0].grad[...] = dy * np.power(scale, -self.beta) - (2 * self.alpha * self.beta / norm) * x * spread

    def _window_sum(self, values):
        """Sum over the centred window of local_size cells on each normalized axis, zeros beyond the edges."""
        half = (self.size - 1) // 2
        for axis in self.axes:
            length = values.shape[axis]
            widths = [(0, 0)] * values.ndim
            widths[axis] = (half, half)
            padded = np.pad(values, widths)
            cells = [slice(None)] * values.ndim
            total = np.zeros_like(values)
            for offset in range(self.size):
                cells[axis] = slice(offset, offset + length)
                total += padded[tuple(cells)]
            values = total
        return values
