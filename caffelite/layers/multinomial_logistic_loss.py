"""Negative log-likelihood of the labelled class, given probabilities."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._loss import Loss, read_labels
from caffelite.layers._loss_tools import LOG_THRESHOLD, one_label_per_item, refuse_gradient


@register_layer("MultinomialLogisticLoss")
class MultinomialLogisticLoss(Loss):
    """loss = -sum_n log(max(p[n, label_n], 1e-20)) / N; p is bottom[0] (N, ...) flattened per item, one label each.

    d loss / d p[n, label_n] = -top.grad / (N max(p[n, label_n], 1e-20)), zero elsewhere. No ignore_label and no
    normalization option: Caffe always divides by N.
    """

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        one_label_per_item(self, bottom[1])

    def forward(self, bottom, top):
        num = bottom[0].shape[0]
        prob = bottom[0].data.reshape(num, -1)
        self.labels, _ = read_labels(self, bottom[1].data.reshape(num), prob.shape[1], None)
        self.picked = np.maximum(prob[np.arange(num), self.labels], LOG_THRESHOLD)
        top[0].data[...] = -np.sum(np.log(self.picked)) / num

    def backward(self, top, propagate_down, bottom):
        refuse_gradient(self, propagate_down, 1, "labels")
        if not propagate_down[0]:
            return
        num = bottom[0].shape[0]
        grad = np.zeros((num, bottom[0].count // num), dtype=bottom[0].grad.dtype)
        grad[np.arange(num), self.labels] = -float(top[0].grad) / num / self.picked
        bottom[0].grad[...] = grad.reshape(bottom[0].shape)
