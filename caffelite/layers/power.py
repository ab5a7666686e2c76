"""Power of an affine function of the input."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._saved_input import SavedInputNeuron


@register_layer("Power")
class Power(SavedInputNeuron):
    """y = (shift + scale x)^power; dy/dx = power scale (shift + scale x)^(power - 1)"""

    def setup(self, bottom, top):
        power_param = self.param.power_param
        self.power, self.scale, self.shift = power_param.power, power_param.scale, power_param.shift
        self.diff_scale = self.power * self.scale

    def value(self, x):
        if self.diff_scale == 0:
            # Caffe's shortcut: the output does not depend on x (so inf or nan inputs give a constant too).
            return np.full_like(x, 1.0 if self.power == 0 else np.power(np.float64(self.shift), self.power))
        base = self._base(x)
        return base if self.power == 1 else np.power(base, self.power)

    def slope(self, x, y):
        if self.power == 1:
            return np.full_like(x, self.diff_scale)
        if self.power == 2:
            return self.diff_scale * self._base(x)
        # The direct derivative rather than Caffe's power * y / x, which is 0/0 = nan wherever x = 0.
        return self.diff_scale * np.power(self._base(x), self.power - 1)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0] and self.diff_scale == 0:
            bottom[0].grad[...] = 0  # Caffe's zero is not multiplied by the top grad, so inf or nan there stays out
            return
        super().backward(top, propagate_down, bottom)

    def _base(self, x):
        base = x if self.scale == 1 else self.scale * x
        return base if self.shift == 0 else base + self.shift
