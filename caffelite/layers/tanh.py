"""Hyperbolic tangent."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._neuron import Neuron


@register_layer("TanH")
class TanH(Neuron):
    """y = tanh(x); dy/dx = 1 - y^2"""

    def forward(self, bottom, top):
        top[0].data[...] = np.tanh(bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:  # uses only the top, so in place is fine
            bottom[0].grad[...] = top[0].grad * (1 - np.square(top[0].data))
