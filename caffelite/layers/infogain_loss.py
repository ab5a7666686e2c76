"""Softmax followed by a multinomial logistic loss weighted by an infogain matrix H."""

import numpy as np

from caffelite.errors import CaffeliteError, NetError, ShapeError
from caffelite.function import register_layer
from caffelite.io.blob import read_binaryproto
from caffelite.layers._loss import SoftmaxLoss, ignore_label
from caffelite.layers._loss_tools import LOG_THRESHOLD, refuse_gradient


@register_layer("InfogainLoss")
class InfogainLoss(SoftmaxLoss):
    """loss = -sum_{valid i} sum_k H[label_i, k] log(max(p_ik, 1e-20)) / normalizer, p = softmax(scores) along axis.

    bottoms: scores, labels (one per position off the class axis), optional H (K*K values; else read from
    infogain_loss_param.source). tops: the loss, optional probabilities. d loss / d scores_ik =
    (p_ik sum_j H[label_i, j] - H[label_i, k]) * top.grad / normalizer, 0 at ignored positions.
    """

    exact_num_bottom = None
    min_bottom = 2
    max_bottom = 3

    def allow_force_backward(self, bottom_index):
        # Caffe lets force_backward reach H and then aborts in Backward; H never takes a gradient here.
        return bottom_index == 0

    def setup(self, bottom, top):
        loss_param = self.param.loss_param
        if loss_param.HasField("normalize"):
            raise NetError(f"{self.describe()}: loss_param.normalize is deprecated for this layer; "
                           f"use loss_param.normalization")
        self.ignore = ignore_label(loss_param)
        self.mode = loss_param.normalization
        self.infogain = self._read_source() if len(bottom) < 3 else None

    def class_axis(self):
        return self.param.infogain_loss_param.axis

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        classes = self.layout[1]
        size = bottom[2].count if len(bottom) > 2 else self.infogain.size
        if size != classes * classes:
            raise ShapeError(f"{self.describe()}: the infogain matrix H must hold {classes}x{classes} values "
                             f"for {classes} classes, got {size}")

    def forward(self, bottom, top):
        self.softmax_and_labels(bottom)
        rows = self._label_rows(bottom)
        log_prob = np.log(np.maximum(self.prob, LOG_THRESHOLD))
        per_position = np.sum(rows * log_prob, axis=1)
        self.write_loss(top, -np.sum(per_position[self.valid]))

    def backward(self, top, propagate_down, bottom):
        refuse_gradient(self, propagate_down, 1, "labels")
        refuse_gradient(self, propagate_down, 2, "infogain matrix")
        if not propagate_down[0]:
            return
        rows = self._label_rows(bottom)
        self.write_grad(self.prob * np.sum(rows, axis=1, keepdims=True) - rows, top, bottom)

    def _read_source(self):
        infogain_param = self.param.infogain_loss_param
        if not infogain_param.HasField("source"):
            raise NetError(f"{self.describe()}: needs infogain_loss_param.source (a binaryproto holding H) "
                           f"or H as a third bottom")
        try:
            matrix = read_binaryproto(infogain_param.source)
        except CaffeliteError as exc:
            raise NetError(f"{self.describe()}: cannot read the infogain matrix: {exc}") from None
        return matrix.astype(self.dtype)

    def _label_rows(self, bottom):
        """H[label, k] laid out like the probabilities: (outer, classes, inner)."""
        classes = self.layout[1]
        matrix = bottom[2].data if len(bottom) > 2 else self.infogain
        return np.moveaxis(matrix.reshape(classes, classes)[self.labels], -1, 1)
