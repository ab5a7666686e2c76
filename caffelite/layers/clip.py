"""Clip values into [min, max]."""

import numpy as np

from caffelite.errors import NetError
from caffelite.function import register_layer
from caffelite.layers._saved_input import SavedInputNeuron


@register_layer("Clip")
class Clip(SavedInputNeuron):
    """y = max(min, min(x, max)); dy/dx = 1 where min <= x <= max (bounds included, as in Caffe), else 0"""

    def setup(self, bottom, top):
        clip_param = self.param.clip_param
        missing = [name for name in ("min", "max") if not clip_param.HasField(name)]
        if missing:
            raise NetError(f"{self.describe()}: clip_param needs both min and max; missing {' and '.join(missing)}")
        self.low, self.high = clip_param.min, clip_param.max
        if self.low > self.high:
            raise NetError(f"{self.describe()}: clip_param min ({self.low}) is greater than max ({self.high})")

    def value(self, x):
        return np.maximum(self.low, np.minimum(x, self.high))

    def slope(self, x, y):
        return ((x >= self.low) & (x <= self.high)).astype(x.dtype)
