"""Cross-entropy of targets in [0, 1] against sigmoid(scores), computed from the scores for stability."""

import numpy as np

from caffelite.errors import ShapeError
from caffelite.function import register_layer
from caffelite.layers._axis import count
from caffelite.layers._loss import Loss, ignore_label, normalization_mode, normalizer
from caffelite.layers._logistic import sigmoid
from caffelite.layers._loss_tools import refuse_gradient
from caffelite.proto import caffe_pb2


@register_layer("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(Loss):
    """loss = sum_{valid i} [max(x_i, 0) - x_i t_i + log(1 + exp(-|x_i|))] / normalizer; d/dx = sigmoid(x) - t.

    bottoms: scores x, targets t (same count). A target whose integer part equals ignore_label is skipped.
    Normalization defaults to BATCH_SIZE here (not VALID), as in Caffe.
    """

    def setup(self, bottom, top):
        loss_param = self.param.loss_param
        self.ignore = ignore_label(loss_param)
        explicit = loss_param.HasField("normalization") or loss_param.HasField("normalize")
        self.mode = normalization_mode(loss_param) if explicit else caffe_pb2.LossParameter.BATCH_SIZE

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count != bottom[1].count:
            raise ShapeError(f"{self.describe()}: scores and targets must have the same count, "
                             f"got {bottom[0].shape} and {bottom[1].shape}")

    def forward(self, bottom, top):
        x = bottom[0].data
        target = bottom[1].data.reshape(x.shape)
        if self.ignore is None:
            self.valid = np.ones(x.shape, dtype=bool)
        else:
            self.valid = target.astype(np.int64) != self.ignore
        per_element = np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))
        self.normalizer = normalizer(self.mode, x.shape[0], count(x.shape, 1), int(np.count_nonzero(self.valid)))
        top[0].data[...] = np.sum(per_element[self.valid]) / self.normalizer

    def backward(self, top, propagate_down, bottom):
        refuse_gradient(self, propagate_down, 1, "targets")
        if not propagate_down[0]:
            return
        x = bottom[0].data
        grad = sigmoid(x) - bottom[1].data.reshape(x.shape)
        grad *= self.valid
        bottom[0].grad[...] = grad * (float(top[0].grad) / self.normalizer)
