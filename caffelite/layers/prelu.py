"""Parametric rectified linear unit: a learned negative slope per channel, or one shared by all channels."""

import numpy as np

from caffelite.errors import ShapeError
from caffelite.fillers import fill
from caffelite.function import register_layer
from caffelite.layers._saved_input import SavedInputNeuron
from caffelite.proto import caffe_pb2


@register_layer("PReLU")
class PReLU(SavedInputNeuron):
    """y = max(0, x) + a_c min(0, x), a_c the slope of channel c (axis 1); params: [a] of shape (C,), or () if shared"""

    def setup(self, bottom, top):
        prelu_param = self.param.prelu_param
        self._check_axes(bottom)
        self.channel_shared = prelu_param.channel_shared
        slope = self.new_param(() if self.channel_shared else (bottom[0].shape[1],))
        if prelu_param.HasField("filler"):
            fill(slope.data, prelu_param.filler)
        else:
            fill(slope.data, caffe_pb2.FillerParameter(type="constant", value=0.25))

    def reshape(self, bottom, top):
        self._check_axes(bottom)
        expected = 1 if self.channel_shared else bottom[0].shape[1]
        if self.params[0].count != expected:
            raise ShapeError(
                f"{self.describe()}: {self.params[0].count} slopes for {bottom[0].shape[1]} channels "
                f"(channel_shared: {str(self.channel_shared).lower()})"
            )
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = self.keep_input(bottom, top)
        top[0].data[...] = np.maximum(x, 0) + self._slopes(x.ndim) * np.minimum(x, 0)

    def backward(self, top, propagate_down, bottom):
        x = self.saved_input(bottom, top)
        dy = top[0].grad
        slope = self.params[0]
        # Caffe counts x == 0 on the negative side, for the slope gradient and the input gradient alike.
        negative = x <= 0
        summed_axes = tuple(i for i in range(x.ndim) if self.channel_shared or i != 1)
        slope.grad += np.sum(dy * x * negative, axis=summed_axes).reshape(slope.shape)
        if propagate_down[0]:
            bottom[0].grad[...] = dy * np.where(negative, self._slopes(x.ndim), 1)

    def _slopes(self, ndim):
        """The slopes, shaped to broadcast against an (N, C, ...) input."""
        slope = self.params[0].data
        return slope if self.channel_shared else slope.reshape((1, -1) + (1,) * (ndim - 2))

    def _check_axes(self, bottom):
        if bottom[0].num_axes < 2:
            raise ShapeError(f"{self.describe()}: the input needs at least 2 axes (N, C, ...), got {bottom[0].shape}")
