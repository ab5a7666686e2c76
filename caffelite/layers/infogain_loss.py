"""Softmax followed by a multinomial logistic loss weighted by an infogain matrix H."""

import numpy as np

from caffelite.errors import CaffeliteError, NetError, ShapeError
from caffelite.function import register_layer
from caffelite.io.blob import read_binaryproto
from caffelite.layers._loss import Loss, ignore_label, label_layout, normalizer, read_labels
from caffelite.layers._loss_tools import LOG_THRESHOLD, refuse_gradient
from caffelite.layers.softmax import softmax


@register_layer("InfogainLoss")
class InfogainLoss(Loss):
    """loss = -sum_{valid i} sum_k H[label_i, k] log(max(p_ik, 1e-20)) / normalizer, p = softmax(scores) along axis.

    bottoms: scores, labels (one per position off the class axis), optional H (K*K values; else read from
    infogain_loss_param.source). tops: the loss, optional probabilities. d loss / d scores_ik =
    (p_ik sum_j H[label_i, j] - H[label_i, k]) * top.grad / normalizer, 0 at ignored positions.
    """

    exact_num_bottom = None
    min_bottom = 2
    max_bottom = 3
    exact_num_top = None
    min_top = 1
    max_top = 2

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

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.layout = label_layout(self, bottom[0], bottom[1], self.param.infogain_loss_param.axis)
        classes = self.layout[1]
        size = bottom[2].count if len(bottom) > 2 else self.infogain.size
        if size != classes * classes:
            raise ShapeError(f"{self.describe()}: the infogain matrix H must hold {classes}x{classes} values "
                             f"for {classes} classes, got {size}")
        if len(top) > 1:
            top[1].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        outer, classes, inner = self.layout
        self.prob = softmax(bottom[0].data.reshape(outer, classes, inner), axis=1)
        self.labels, self.valid = read_labels(self, bottom[1].data.reshape(outer, inner), classes, self.ignore)
        rows = self._label_rows(bottom)
        log_prob = np.log(np.maximum(self.prob, LOG_THRESHOLD))
        per_position = np.sum(rows * log_prob, axis=1)
        top[0].data[...] = -np.sum(per_position[self.valid]) / self._normalizer()
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(bottom[0].shape)

    def backward(self, top, propagate_down, bottom):
        refuse_gradient(self, propagate_down, 1, "labels")
        refuse_gradient(self, propagate_down, 2, "infogain matrix")
        if not propagate_down[0]:
            return
        rows = self._label_rows(bottom)
        grad = self.prob * np.sum(rows, axis=1, keepdims=True) - rows
        grad *= self.valid[:, None, :]
        scale = float(top[0].grad) / self._normalizer()
        bottom[0].grad[...] = (grad * scale).reshape(bottom[0].shape)

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

    def _normalizer(self):
        outer, _, inner = self.layout
        return normalizer(self.mode, outer, inner, int(np.count_nonzero(self.valid)))
