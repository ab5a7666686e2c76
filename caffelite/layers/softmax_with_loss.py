"""Softmax followed by the multinomial logistic loss, fused for a stable gradient."""

import numpy as np

from caffelite.errors import NetError
from caffelite.function import register_layer
from caffelite.layers._loss import (
    FLT_MIN,
    Loss,
    ignore_label,
    label_layout,
    normalization_mode,
    normalizer,
    read_labels,
)
from caffelite.layers.softmax import softmax


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLoss(Loss):
    """loss = -sum_{valid i} log(max(p_i[label_i], FLT_MIN)) / normalizer, p = softmax(scores) along the axis.

    bottom[0] scores, bottom[1] labels (one per position off the class axis); top[0] the loss, optional top[1]
    the probabilities. d loss / d scores = (p - onehot(label)) * top[0].grad / normalizer, 0 at ignored positions.
    """

    exact_num_top = None
    min_top = 1
    max_top = 2

    def setup(self, bottom, top):
        loss_param = self.param.loss_param
        self.ignore = ignore_label(loss_param)
        self.mode = normalization_mode(loss_param)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.layout = label_layout(self, bottom[0], bottom[1], self.param.softmax_param.axis)
        if len(top) > 1:
            top[1].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        outer, classes, inner = self.layout
        self.prob = softmax(bottom[0].data.reshape(outer, classes, inner), axis=1)
        self.labels, self.valid = read_labels(self, bottom[1].data.reshape(outer, inner), classes, self.ignore)
        picked = np.take_along_axis(self.prob, self.labels[:, None, :], axis=1)[:, 0, :]
        loss = -np.sum(np.log(np.maximum(picked, FLT_MIN))[self.valid])
        top[0].data[...] = loss / self._normalizer()
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(bottom[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise NetError(f"{self.describe()}: cannot backpropagate to the labels (bottom[1])")
        if not propagate_down[0]:
            return
        grad = self.prob.copy()
        at_label = np.take_along_axis(grad, self.labels[:, None, :], axis=1)
        np.put_along_axis(grad, self.labels[:, None, :], at_label - 1, axis=1)
        grad *= self.valid[:, None, :]
        scale = float(top[0].grad) / self._normalizer()
        bottom[0].grad[...] = (grad * scale).reshape(bottom[0].shape)

    def _normalizer(self):
        outer, _, inner = self.layout
        return normalizer(self.mode, outer, inner, int(np.count_nonzero(self.valid)))
