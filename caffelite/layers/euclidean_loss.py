"""Half the mean squared distance between two blobs."""

import numpy as np

from caffelite.errors import ShapeError
from caffelite.function import register_layer
from caffelite.layers._axis import count
from caffelite.layers._loss import Loss


@register_layer("EuclideanLoss")
class EuclideanLoss(Loss):
    """loss = sum((a - b)^2) / (2 N), N = a.shape[0]; d/da = (a - b) * top.grad / N, d/db = -(a - b) * top.grad / N"""

    def allow_force_backward(self, bottom_index):
        return True  # both inputs may be predictions

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if count(bottom[0].shape, 1) != count(bottom[1].shape, 1):
            raise ShapeError(
                f"{self.describe()}: inputs differ in size per item: {bottom[0].shape} vs {bottom[1].shape}"
            )

    def forward(self, bottom, top):
        self.diff = bottom[0].data - bottom[1].data.reshape(bottom[0].shape)
        top[0].data[...] = np.vdot(self.diff, self.diff) / bottom[0].shape[0] / 2

    def backward(self, top, propagate_down, bottom):
        for index, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[index]:
                alpha = sign * float(top[0].grad) / bottom[index].shape[0]
                bottom[index].grad[...] = (alpha * self.diff).reshape(bottom[index].shape)
