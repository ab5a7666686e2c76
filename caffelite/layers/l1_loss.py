"""Mean absolute error per item (a caffelite addition)."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._loss_tools import DifferenceLoss, assign_pair_grads


@register_layer("L1Loss")
class L1Loss(DifferenceLoss):
    """loss = sum|a - b| / N, N = a.shape[0] (the batch, like EuclideanLoss, without its 1/2); no options.

    d loss / d a = sign(a - b) top.grad / N (0 where a == b); d/d b is its negative.
    """

    def forward(self, bottom, top):
        self.diff = self.difference(bottom)
        top[0].data[...] = np.sum(np.abs(self.diff)) / bottom[0].shape[0]

    def backward(self, top, propagate_down, bottom):
        grad = np.sign(self.diff) * (float(top[0].grad) / bottom[0].shape[0])
        assign_pair_grads(bottom, propagate_down, grad)
