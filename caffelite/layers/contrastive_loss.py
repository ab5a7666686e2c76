"""Contrastive loss on pairs of feature vectors (Hadsell, Chopra and LeCun, 2006)."""

import numpy as np

from caffelite.errors import ShapeError
from caffelite.function import register_layer
from caffelite.layers._loss import Loss
from caffelite.layers._loss_tools import assign_pair_grads, legacy_shape, zero_grads

# Caffe adds this to the distance it divides by, so identical dissimilar pairs give a finite gradient.
_DIST_EPS = 1e-4


@register_layer("ContrastiveLoss")
class ContrastiveLoss(Loss):
    """loss = sum_n [y_n d_n^2 + (1 - y_n) max(margin - d_n, 0)^2] / 2N, d_n = ||a_n - b_n||.

    bottoms a, b (N, C) or (N, C, 1, 1), similarity y (one per pair; nonzero integer part = similar).
    legacy_version uses max(margin - d_n^2, 0) for dissimilar pairs. d loss / d a_n = c_n (a_n - b_n) top.grad / N
    with c_n = 1 (similar), -1 (legacy, inside margin) or -(margin - d_n) / (d_n + 1e-4) (inside margin), else 0;
    d/d b_n is its negative; y takes no gradient.
    """

    exact_num_bottom = 3

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def setup(self, bottom, top):
        loss_param = self.param.contrastive_loss_param
        self.margin = loss_param.margin
        self.legacy = loss_param.legacy_version

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        a, b, y = (legacy_shape(self, t, name) for t, name in zip(bottom, ("a", "b", "the similarity")))
        if a[1] != b[1] or a[2:] != (1, 1) or b[2:] != (1, 1):
            raise ShapeError(f"{self.describe()}: a and b must be (N, C) or (N, C, 1, 1) with the same C, "
                             f"got {bottom[0].shape} and {bottom[1].shape}")
        if y != (a[0], 1, 1, 1):
            raise ShapeError(f"{self.describe()}: expects one similarity per pair, shaped ({a[0]},) or "
                             f"({a[0]}, 1, 1, 1), got {bottom[2].shape}")

    def forward(self, bottom, top):
        num = bottom[0].shape[0]
        self.diff = bottom[0].data.reshape(num, -1) - bottom[1].data.reshape(num, -1)
        self.dist_sq = np.sum(self.diff * self.diff, axis=1)
        self.similar = bottom[2].data.reshape(num).astype(np.int64) != 0
        if self.legacy:
            apart = np.maximum(self.margin - self.dist_sq, 0)
        else:
            apart = np.maximum(self.margin - np.sqrt(self.dist_sq), 0) ** 2
        top[0].data[...] = np.sum(np.where(self.similar, self.dist_sq, apart)) / num / 2

    def backward(self, top, propagate_down, bottom):
        zero_grads(bottom, propagate_down, [2])
        if not (propagate_down[0] or propagate_down[1]):
            return
        num = bottom[0].shape[0]
        if self.legacy:
            inside = self.margin - self.dist_sq
            apart = -(inside > 0).astype(self.diff.dtype)
        else:
            dist = np.sqrt(self.dist_sq)
            inside = self.margin - dist
            apart = np.where(inside > 0, -inside / (dist + _DIST_EPS), 0)
        coeff = np.where(self.similar, 1, apart) * (float(top[0].grad) / num)
        grad = (coeff[:, None] * self.diff).astype(self.diff.dtype, copy=False)
        assign_pair_grads(bottom, propagate_down, grad)
