"""Exponential with a configurable base."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._log_base import log_of_base
from caffelite.layers._neuron import Neuron


@register_layer("Exp")
class Exp(Neuron):
    """y = base^(shift + scale x) (base -1 means e); dy/dx = ln(base) scale y"""

    def setup(self, bottom, top):
        exp_param = self.param.exp_param
        base, shift = exp_param.base, exp_param.shift
        self.inner_scale = log_of_base(self, base) * exp_param.scale
        with np.errstate(over="ignore"):  # a huge shift gives inf, as in Caffe, not a Python OverflowError
            outer = np.exp(np.float64(shift)) if base == -1 else np.power(np.float64(base), shift)
            self.outer_scale = float(outer)

    def forward(self, bottom, top):
        x = bottom[0].data
        y = np.exp(x if self.inner_scale == 1 else self.inner_scale * x)
        top[0].data[...] = y if self.outer_scale == 1 else self.outer_scale * y

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:  # uses only the top, so in place is fine
            bottom[0].grad[...] = top[0].grad * top[0].data * self.inner_scale
