"""Top-k classification accuracy (a measurement, not a loss)."""

import numpy as np

from caffelite.errors import ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._loss import ignore_label, label_layout, read_labels


@register_layer("Accuracy")
class Accuracy(Function):
    """accuracy = #{valid i : fewer than top_k other classes score >= scores_i[label_i]} / #{valid i} (0 if none).

    A class tied with the true one counts against it. An optional top[1] holds the same ratio per true class.
    """

    exact_num_bottom = 2
    min_top = 1
    max_top = 2

    def setup(self, bottom, top):
        accuracy_param = self.param.accuracy_param
        self.top_k = accuracy_param.top_k
        self.ignore = ignore_label(accuracy_param)

    def reshape(self, bottom, top):
        self.layout = label_layout(self, bottom[0], bottom[1], self.param.accuracy_param.axis)
        classes = self.layout[1]
        if self.top_k > classes:
            raise ShapeError(f"{self.describe()}: top_k {self.top_k} exceeds the {classes} classes")
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((classes,))

    def forward(self, bottom, top):
        outer, classes, inner = self.layout
        scores = bottom[0].data.reshape(outer, classes, inner)
        labels, valid = read_labels(self, bottom[1].data.reshape(outer, inner), classes, self.ignore)
        true_score = np.take_along_axis(scores, labels[:, None, :], axis=1)
        rivals = np.count_nonzero(scores >= true_score, axis=1) - 1  # the true class matches itself
        hit = valid & (rivals < self.top_k)
        counted = np.count_nonzero(valid)
        top[0].data[...] = np.count_nonzero(hit) / counted if counted else 0
        if len(top) > 1:
            per_class = np.bincount(labels[valid], minlength=classes)
            per_class_hits = np.bincount(labels[hit], minlength=classes)
            top[1].data[...] = np.where(per_class > 0, per_class_hits / np.maximum(per_class, 1), 0)

    def backward(self, top, propagate_down, bottom):
        # Not differentiable: Caffe aborts here; a zero gradient is the safe equivalent when a net still asks.
        for tensor, wanted in zip(bottom, propagate_down):
            if wanted:
                tensor.grad[...] = 0
