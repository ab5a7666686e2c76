"""Exponential linear unit."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._saved_input import SavedInputNeuron


@register_layer("ELU")
class ELU(SavedInputNeuron):
    """y = x if x > 0 else alpha (exp(x) - 1); dy/dx = 1 if x > 0 else alpha exp(x)"""

    def setup(self, bottom, top):
        self.alpha = self.param.elu_param.alpha

    def value(self, x):
        # expm1 keeps the small negative outputs accurate; the minimum keeps exp from overflowing.
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))

    def slope(self, x, y):
        # The sign test is on x, not y, so a negative alpha stays right in place.
        return np.where(x > 0, 1, self.alpha * np.exp(np.minimum(x, 0)))
