"""Smooth L1 (Huber) loss for box regression, as in the Fast R-CNN fork of Caffe."""

import numpy as np

from caffelite.errors import NetError
from caffelite.function import register_layer
from caffelite.layers._loss_tools import DifferenceLoss, assign_pair_grads, zero_grads


@register_layer("SmoothL1Loss")
class SmoothL1Loss(DifferenceLoss):
    """loss = sum(w_out f(w_in (a - b))) / N, f(x) = (sigma x)^2 / 2 if |x| < 1 / sigma^2 else |x| - 1 / (2 sigma^2).

    bottoms: prediction a, target b, optional inside weights w_in, optional outside weights w_out (all of a's
    size). d loss / d a = w_out w_in f'(w_in (a - b)) top.grad / N with f'(x) = sigma^2 x or sign(x);
    d/d b is its negative; the weights take no gradient.
    """

    exact_num_bottom = None
    min_bottom = 2
    max_bottom = 4

    def setup(self, bottom, top):
        sigma = self.param.smooth_l1_loss_param.sigma
        if sigma == 0:
            raise NetError(f"{self.describe()}: smooth_l1_loss_param.sigma must be nonzero")
        self.sigma2 = sigma * sigma

    def forward(self, bottom, top):
        x = self.difference(bottom)
        if len(bottom) > 2:
            x *= self.weight(bottom, 2)
        self.x = x
        self.quadratic = np.abs(x) < 1 / self.sigma2
        errors = np.where(self.quadratic, 0.5 * self.sigma2 * x * x, np.abs(x) - 0.5 / self.sigma2)
        if len(bottom) > 3:
            errors *= self.weight(bottom, 3)
        top[0].data[...] = np.sum(errors) / bottom[0].shape[0]

    def backward(self, top, propagate_down, bottom):
        zero_grads(bottom, propagate_down, [2, 3])
        if not (propagate_down[0] or propagate_down[1]):
            return
        grad = np.where(self.quadratic, self.sigma2 * self.x, np.sign(self.x))
        for index in range(2, len(bottom)):
            grad *= self.weight(bottom, index)
        grad *= float(top[0].grad) / bottom[0].shape[0]
        assign_pair_grads(bottom, propagate_down, grad)
