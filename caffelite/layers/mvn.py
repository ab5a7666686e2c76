"""Mean-variance normalization of each image's channels (or of each whole image)."""

import numpy as np

from caffelite.errors import ShapeError
from caffelite.function import Function, register_layer


@register_layer("MVN")
class MVN(Function):
    """y = (x - mean) / (std + eps) over each (n, c) plane (each image n with across_channels); x - mean only.

    "x - mean only" without normalize_variance. std is the biased one, and eps is added to it, as in Caffe.
    Caffe reads the input as (num, channels, height, width), so the top is always that 4-D shape. Backward is
    Caffe's: (dy - mean(dy) - mean(dy y) y) / (std + eps), exact for eps = 0 (it leaves eps out of d std / dx,
    a relative error of eps / std in the last term). In place allowed.
    """

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        mvn = self.param.mvn_param
        self.normalize_variance = mvn.normalize_variance
        self.across_channels = mvn.across_channels
        self.eps = mvn.eps
        self._std = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) > 4:
            raise ShapeError(f"{self.describe()}: input must have at most 4 axes (num, channels, height, width), "
                             f"got shape {shape}")
        legacy = shape + (1,) * (4 - len(shape))
        self.rows = legacy[0] if self.across_channels else legacy[0] * legacy[1]
        top[0].reshape(legacy)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.rows, -1)
        y = x - x.mean(axis=1, keepdims=True)
        if self.normalize_variance:
            self._std = np.sqrt(np.square(y).mean(axis=1, keepdims=True)) + self.eps
            y /= self._std
        top[0].data.reshape(self.rows, -1)[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].grad.reshape(self.rows, -1)
        dx = dy - dy.mean(axis=1, keepdims=True)
        if self.normalize_variance:
            y = top[0].data.reshape(self.rows, -1)
            dx -= (dy * y).mean(axis=1, keepdims=True) * y
            dx /= self._std
        bottom[0].grad.reshape(self.rows, -1)[...] = dx
