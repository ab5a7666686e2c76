"""Gaussian error linear unit (a caffelite addition, as in Caffe forks)."""

import math

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._erf import erfc
from caffelite.layers._saved_input import SavedInputNeuron
from caffelite.proto import caffe_pb2

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_CUBIC = 0.044715


@register_layer("GELU")
class GELU(SavedInputNeuron):
    """y = x Phi(x), Phi the standard normal CDF; TANH: y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))"""

    def setup(self, bottom, top):
        self.tanh_form = self.param.gelu_param.approximate == caffe_pb2.GELUParameter.TANH

    def value(self, x):
        if self.tanh_form:
            return 0.5 * x * (1 + self._tanh(x))
        return x * _normal_cdf(x)

    def slope(self, x, y):
        if self.tanh_form:
            t = self._tanh(x)
            return 0.5 * (1 + t) + (0.5 * _SQRT_2_OVER_PI) * x * (1 - t * t) * (1 + (3 * _CUBIC) * x * x)
        return _normal_cdf(x) + x * (_INV_SQRT_2PI * np.exp(-0.5 * x * x))

    @staticmethod
    def _tanh(x):
        return np.tanh(_SQRT_2_OVER_PI * (x + _CUBIC * x * x * x))


def _normal_cdf(x):
    # Through erfc, so the far negative tail keeps its relative accuracy (1 + erf would cancel to 0).
    return 0.5 * erfc(-_SQRT_HALF * x)
