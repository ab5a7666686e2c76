"""Rectified linear unit, leaky when negative_slope is set."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._neuron import Neuron
from caffelite.layers._threads import elementwise


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
            elementwise(lambda x, y: np.maximum(x, 0, out=y), x, top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # Valid in place for slope >= 0: y > 0 exactly where x > 0.
        if self.slope:
            positive = bottom[0].data > 0
            bottom[0].grad[...] = top[0].grad * np.where(positive, 1, self.slope).astype(self.dtype)
            return
        elementwise(lambda x, dy, dx: np.multiply(dy, x > 0, out=dx), bottom[0].data, top[0].grad, bottom[0].grad)
