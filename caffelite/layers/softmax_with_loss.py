"""Softmax followed by the multinomial logistic loss, fused for a stable gradient."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._loss import FLT_MIN, SoftmaxLoss, ignore_label, normalization_mode
from caffelite.layers._loss_tools import refuse_gradient


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLoss(SoftmaxLoss):
    """loss = -sum_{valid i} log(max(p_i[label_i], FLT_MIN)) / normalizer, p = softmax(scores) along the axis.

    bottom[0] scores, bottom[1] labels (one per position off the class axis); top[0] the loss, optional top[1]
    the probabilities. d loss / d scores = (p - onehot(label)) * top[0].grad / normalizer, 0 at ignored positions.
    """

    def setup(self, bottom, top):
        loss_param = self.param.loss_param
        self.ignore = ignore_label(loss_param)
        self.mode = normalization_mode(loss_param)

    def class_axis(self):
        return self.param.softmax_param.axis

    def forward(self, bottom, top):
        self.softmax_and_labels(bottom)
        picked = np.take_along_axis(self.prob, self.labels[:, None, :], axis=1)[:, 0, :]
        self.write_loss(top, -np.sum(np.log(np.maximum(picked, FLT_MIN))[self.valid]))

    def backward(self, top, propagate_down, bottom):
        refuse_gradient(self, propagate_down, 1, "labels")
        if not propagate_down[0]:
            return
        grad = self.prob.copy()
        at_label = np.take_along_axis(grad, self.labels[:, None, :], axis=1)
        np.put_along_axis(grad, self.labels[:, None, :], at_label - 1, axis=1)
        self.write_grad(grad, top, bottom)
