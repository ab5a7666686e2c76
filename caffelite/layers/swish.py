"""Swish (SiLU when beta = 1)."""

from caffelite.function import register_layer
from caffelite.layers._logistic import sigmoid
from caffelite.layers._neuron import Neuron


@register_layer("Swish")
class Swish(Neuron):
    """y = x sigmoid(beta x); dy/dx = beta y + sigmoid(beta x) (1 - beta y)"""

    def setup(self, bottom, top):
        self.beta = self.param.swish_param.beta

    def forward(self, bottom, top):
        x = bottom[0].data
        # Kept for backward, which then needs only y and this: correct in place without a copy of x.
        self.sigmoid = sigmoid(self.beta * x)
        top[0].data[...] = x * self.sigmoid

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            beta_y = self.beta * top[0].data
            bottom[0].grad[...] = top[0].grad * (beta_y + self.sigmoid * (1 - beta_y))
