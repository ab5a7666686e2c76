"""Rectified linear unit, leaky when negative_slope is set."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._neuron import Neuron
from caffelite.layers._threads import elementwise

# np.maximum(x, 0) takes numpy's slow loop for a broadcast operand, and its fast one against an array: chunks of
# _CHUNK cells against one shared chunk of zeros (which stays in cache). One thread on the 2-core AMD VM: 2^17
# cells 114 -> 38 us, 2^21 1636 -> 768 us, 2^23 7143 -> 4148 us. The same ufunc gives the same bits either way.
_CHUNK = 1 << 16
# Backward (a compare and a product per element) gains from a second thread from about 2^20 elements: 455 us on
# two threads and 566 alone at 2^20, 350 and 282 at 2^19.
_BACKWARD_MIN_ELEMENTS = 1 << 20
_zeros = {}


@register_layer("ReLU")
class ReLU(Neuron):
    """y = max(0, x) + negative_slope * min(0, x)"""

    def setup(self, bottom, top):
        self.slope = self.param.relu_param.negative_slope

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.slope:
            top[0].data[...] = np.where(x > 0, x, self.slope * x)
        else:
            # One pass (split across threads), in place too; NaN stays NaN as with Caffe's max.
            elementwise(_rectify, x, top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # Valid in place for slope >= 0: y > 0 exactly where x > 0.
        if self.slope:
            positive = bottom[0].data > 0
            bottom[0].grad[...] = top[0].grad * np.where(positive, 1, self.slope).astype(self.dtype)
            return
        elementwise(lambda x, dy, dx: np.multiply(dy, x > 0, out=dx), bottom[0].data, top[0].grad, bottom[0].grad,
                    minimum=_BACKWARD_MIN_ELEMENTS)


def _rectify(x, y):
    """y = max(x, 0), chunk by chunk for flat arrays (see _CHUNK)."""
    if x.ndim != 1:
        np.maximum(x, 0, out=y)
        return
    zeros = _zeros.get(x.dtype)
    if zeros is None:
        zeros = _zeros.setdefault(x.dtype, np.zeros(_CHUNK, x.dtype))
    for lo in range(0, len(x), _CHUNK):
        hi = min(lo + _CHUNK, len(x))
        np.maximum(x[lo:hi], zeros[:hi - lo], out=y[lo:hi])
