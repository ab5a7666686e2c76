"""Absolute value."""

import numpy as np

from caffelite.errors import NetError
from caffelite.function import register_layer
from caffelite.layers._neuron import Neuron


@register_layer("AbsVal")
class AbsVal(Neuron):
    """y = |x|; dy/dx = sign(x) (0 at x = 0)"""

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise NetError(f"{self.describe()}: AbsVal cannot run in place (its top must not be its bottom)")

    def forward(self, bottom, top):
        top[0].data[...] = np.abs(bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = top[0].grad * np.sign(bottom[0].data)
