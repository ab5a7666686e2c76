"""One-versus-all hinge loss for multi-class classification."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._loss import Loss, read_labels
from caffelite.layers._loss_tools import one_label_per_item, refuse_gradient
from caffelite.proto import caffe_pb2

_L2 = caffe_pb2.HingeLossParameter.L2


@register_layer("HingeLoss")
class HingeLoss(Loss):
    """loss = sum_{n,k} max(0, 1 - t_nk x_nk)^p / N, t_nk = 1 if k == label_n else -1, p = 1 (L1) or 2 (L2).

    x is bottom[0] (N, ...) flattened per item, one label per item. d loss / d x_nk = -t_nk [slack > 0] (L1) or
    -2 t_nk slack (L2), times top.grad / N.
    """

    def setup(self, bottom, top):
        self.squared = self.param.hinge_loss_param.norm == _L2

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        one_label_per_item(self, bottom[1])

    def forward(self, bottom, top):
        num = bottom[0].shape[0]
        scores = bottom[0].data.reshape(num, -1)
        labels, _ = read_labels(self, bottom[1].data.reshape(num), scores.shape[1], None)
        self.target = -np.ones_like(scores)
        self.target[np.arange(num), labels] = 1
        self.slack = np.maximum(0, 1 - self.target * scores)
        total = np.vdot(self.slack, self.slack) if self.squared else np.sum(self.slack)
        top[0].data[...] = total / num

    def backward(self, top, propagate_down, bottom):
        refuse_gradient(self, propagate_down, 1, "labels")
        if not propagate_down[0]:
            return
        num = bottom[0].shape[0]
        if self.squared:
            grad = -2 * self.target * self.slack
        else:
            grad = -self.target * (self.slack > 0)
        bottom[0].grad[...] = (grad * (float(top[0].grad) / num)).reshape(bottom[0].shape)
