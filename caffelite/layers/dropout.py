"""Inverted dropout."""

from caffelite.errors import NetError
from caffelite.function import register_layer
from caffelite.layers._neuron import Neuron
from caffelite.phase import TRAIN
from caffelite.rng import rng


@register_layer("Dropout")
class Dropout(Neuron):
    """TRAIN: y = x * m / (1 - ratio), m ~ Bernoulli(1 - ratio) per element; TEST: y = x"""

    def setup(self, bottom, top):
        self.ratio = self.param.dropout_param.dropout_ratio
        if not 0 <= self.ratio < 1:
            raise NetError(f"{self.describe()}: dropout_ratio must be in [0, 1), got {self.ratio}")
        self.scale = 1.0 / (1.0 - self.ratio)

    def forward(self, bottom, top):
        if self.phase == TRAIN:
            keep = rng().random(bottom[0].shape) < 1.0 - self.ratio
            # Kept for backward; it never reads the bottom, so in place is fine.
            self.mask = (keep * self.scale).astype(self.dtype)
            top[0].data[...] = bottom[0].data * self.mask
        else:
            top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = top[0].grad * self.mask if self.phase == TRAIN else top[0].grad
