"""Logistic sigmoid."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._neuron import Neuron


@register_layer("Sigmoid")
class Sigmoid(Neuron):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y)"""

    def forward(self, bottom, top):
        # The tanh form never overflows, for any x.
        top[0].data[...] = 0.5 * np.tanh(0.5 * bottom[0].data) + 0.5

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:  # uses only the top, so in place is fine
            y = top[0].data
            bottom[0].grad[...] = top[0].grad * y * (1 - y)
