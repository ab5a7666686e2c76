"""Batch normalization without the affine part (Caffe puts that in a following Scale layer)."""

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._threads import over_batch
from caffelite.phase import TEST


@register_layer("BatchNorm")
class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) per channel (axis 1), over the batch and every spatial position.

    Params (statistics, never learned): mean sums [C], variance sums [C], their weight s [1]; the stored
    estimates are mean / s and variance / s (0 when s is 0). use_global_stats (default: true in TEST, false in
    TRAIN) normalizes with the stored estimates; otherwise with the batch's own (biased) statistics, and then
    s = maf s + 1, mean_sum = mean + maf mean_sum, var_sum = m/(m-1) var + maf var_sum (m values per channel).
    Like Caffe, setup adds `param { lr_mult: 0 }` for each statistic without a ParamSpec and refuses a nonzero one.
    In place allowed.
    """

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        bn = self.param.batch_norm_param
        self.fraction = bn.moving_average_fraction
        self.use_global_stats = bn.use_global_stats if bn.HasField("use_global_stats") else self.phase == TEST
        self.eps = bn.eps
        self.channels = 1 if bottom[0].num_axes == 1 else bottom[0].shape[1]
        for shape in ((self.channels,), (self.channels,), (1,)):
            self.new_param(shape)  # zeros: no statistics yet
        self._freeze_statistics()
        self._normalized = None
        self._std = None

    def _freeze_statistics(self):
        specs = self.param.param
        for index in range(len(self.params)):
            if index == len(specs):
                specs.add(lr_mult=0)
            elif specs[index].lr_mult != 0:
                raise NetError(f"{self.describe()}: param {index} has lr_mult {specs[index].lr_mult}; batch "
                               "normalization statistics cannot be learned, use lr_mult: 0 (or no param)")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) == 0 or (len(shape) > 1 and shape[1] != self.channels):
            raise ShapeError(f"{self.describe()}: input of shape {shape} does not have the {self.channels} channels "
                             "on axis 1 the statistics were made for")
        self.num = shape[0]
        top[0].reshape(shape)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.channels, -1)
        if self.use_global_stats:
            # Constants: backward needs only the std, so the top is written directly, in two passes.
            mean, var = self._stored_estimates()
            self._std = np.sqrt(var + self.eps)[:, None]
            y = top[0].data.reshape(x.shape)
            over_batch(len(x), lambda lo, hi: self._normalize(x[lo:hi], mean, y[lo:hi]), x.size)
            return
        mean = x.mean(axis=(0, 2))
        centered = x - mean[:, None]
        var = np.square(centered).mean(axis=(0, 2))
        self._update_statistics(mean, var, x.size // self.channels)
        self._std = np.sqrt(var + self.eps)[:, None]
        # Kept apart from the top: a later in-place layer may change it before backward.
        self._normalized = centered / self._std
        top[0].data[...] = self._normalized.reshape(top[0].shape)

    def _normalize(self, x, mean, y):
        np.subtract(x, mean[:, None], out=y)
        y /= self._std

    def _stored_estimates(self):
        weight = self.params[2].data[0]
        factor = 0 if weight == 0 else 1 / weight
        return self.params[0].data * factor, self.params[1].data * factor

    def _update_statistics(self, mean, var, values_per_channel):
        mean_sum, var_sum, weight = (p.data for p in self.params)
        weight *= self.fraction
        weight += 1
        mean_sum *= self.fraction
        mean_sum += mean
        correction = values_per_channel / (values_per_channel - 1) if values_per_channel > 1 else 1
        var_sum *= self.fraction
        var_sum += correction * var

    def backward(self, top, propagate_down, bottom):
        """Global statistics are constants: dx = dy / std. Batch statistics: (dy - mean(dy) - mean(dy y) y) / std."""
        if not propagate_down[0]:
            return
        dy = top[0].grad.reshape(self.num, self.channels, -1)
        if self.use_global_stats:
            dx = dy / self._std
        else:
            y = self._normalized
            dx = dy - dy.mean(axis=(0, 2))[:, None] - (dy * y).mean(axis=(0, 2))[:, None] * y
            dx /= self._std
        bottom[0].grad[...] = dx.reshape(bottom[0].shape)
