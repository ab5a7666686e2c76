"""Logistic sigmoid."""

from caffelite.function import register_layer
from caffelite.layers._logistic import sigmoid
from caffelite.layers._neuron import Neuron


@register_layer("Sigmoid")
class Sigmoid(Neuron):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y)"""

    def forward(self, bottom, top):
        top[0].data[...] = sigmoid(bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:  # uses only the top, so in place is fine
            y = top[0].data
            bottom[0].grad[...] = top[0].grad * y * (1 - y)
