"""Logarithm with a configurable base."""

import numpy as np

from caffelite.errors import NetError
from caffelite.function import register_layer
from caffelite.layers._log_base import log_of_base
from caffelite.layers._saved_input import SavedInputNeuron


@register_layer("Log")
class Log(SavedInputNeuron):
    """y = log_base(shift + scale x) (base -1 means e); dy/dx = scale / (ln(base) (shift + scale x))"""

    def setup(self, bottom, top):
        log_param = self.param.log_param
        log_base = log_of_base(self, log_param.base)
        if log_base == 0:
            raise NetError(f"{self.describe()}: base 1 has no logarithm (1/log(base) is infinite)")
        self.base_scale = 1.0 / log_base
        self.scale, self.shift = log_param.scale, log_param.shift

    def value(self, x):
        y = np.log(self._argument(x))
        return y if self.base_scale == 1 else self.base_scale * y

    def slope(self, x, y):
        return (self.scale * self.base_scale) / self._argument(x)

    def _argument(self, x):
        argument = x if self.scale == 1 else self.scale * x
        return argument if self.shift == 0 else argument + self.shift
