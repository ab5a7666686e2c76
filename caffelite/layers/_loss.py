"""What loss layers (and Accuracy) share: Caffe's LossLayer contract, the normalizer rule, class-label handling,
and the softmax front end of SoftmaxWithLoss and InfogainLoss."""

import numpy as np

from caffelite.errors import ShapeError
from caffelite.function import Function
from caffelite.layers._axis import canonical_axis, count
from caffelite.layers.softmax import softmax
from caffelite.proto import caffe_pb2

_MODE = caffe_pb2.LossParameter
# Caffe clamps probabilities to the smallest normal float before the log, whatever the blob dtype.
FLT_MIN = float(np.finfo(np.float32).tiny)


class Loss(Function):
    """Caffe's LossLayer: bottoms (prediction, target) with equal first dimensions, one scalar top of shape ()."""

    exact_num_bottom = 2
    exact_num_top = 1
    is_loss = True

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1  # the targets are usually labels, which have no gradient

    def reshape(self, bottom, top):
        first = [b.shape[0] if b.num_axes else None for b in bottom[:2]]
        if first[0] is None or first[0] != first[1]:
            raise ShapeError(
                f"{self.describe()}: prediction and target need the same first dimension, "
                f"got {bottom[0].shape} and {bottom[1].shape}"
            )
        top[0].reshape(())


def normalization_mode(loss_param):
    """The LossParameter's mode; the legacy `normalize` flag counts only when `normalization` is not set."""
    if not loss_param.HasField("normalization") and loss_param.HasField("normalize"):
        return _MODE.VALID if loss_param.normalize else _MODE.BATCH_SIZE
    return loss_param.normalization


def normalizer(mode, outer, inner, valid_count=None):
    """What the summed loss is divided by; never below 1, so a batch with every label ignored gives 0, not NaN."""
    if mode == _MODE.FULL:
        value = outer * inner
    elif mode == _MODE.VALID:
        value = outer * inner if valid_count is None else valid_count
    elif mode == _MODE.BATCH_SIZE:
        value = outer
    elif mode == _MODE.NONE:
        value = 1
    else:
        raise ValueError(f"unknown loss normalization mode {mode}")
    return float(max(1, value))


def ignore_label(param):
    """The `ignore_label` of a LossParameter or AccuracyParameter, or None when it is not set."""
    return param.ignore_label if param.HasField("ignore_label") else None


def label_layout(layer, scores, labels, axis):
    """(outer, classes, inner) of `scores` split around the class `axis`; one label per prediction is required."""
    axis = canonical_axis(layer, axis, scores.num_axes)
    outer, inner = count(scores.shape, 0, axis), count(scores.shape, axis + 1)
    if outer * inner != labels.count:
        raise ShapeError(
            f"{layer.describe()}: {labels.count} labels for {outer * inner} predictions "
            f"(scores {scores.shape}, class axis {axis}: labels must number the product of the other axes)"
        )
    return outer, scores.shape[axis], inner


def read_labels(layer, labels, classes, ignore):
    """Labels cast to int as Caffe does (toward zero), with ignored ones replaced by 0, and the mask of counted ones."""
    values = labels.astype(np.int64)
    valid = np.ones(values.shape, dtype=bool) if ignore is None else values != ignore
    bad = valid & ((values < 0) | (values >= classes))
    if bad.any():
        raise ShapeError(f"{layer.describe()}: label {values[bad][0]} is outside [0, {classes})")
    return np.where(valid, values, 0), valid


class SoftmaxLoss(Loss):
    """A loss on p = softmax(scores) along the class axis, one label per position off it; optional top[1] = p.

    Subclasses set `self.ignore` and `self.mode` in setup and give the class axis.
    """

    exact_num_top = None
    min_top = 1
    max_top = 2

    def class_axis(self):
        raise NotImplementedError(f"{type(self).__name__}.class_axis")

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.layout = label_layout(self, bottom[0], bottom[1], self.class_axis())
        if len(top) > 1:
            top[1].reshape(bottom[0].shape)

    def softmax_and_labels(self, bottom):
        """self.prob (outer, classes, inner), the labels (outer, inner) and the mask of counted ones."""
        outer, classes, inner = self.layout
        self.prob = softmax(bottom[0].data.reshape(outer, classes, inner), axis=1)
        self.labels, self.valid = read_labels(self, bottom[1].data.reshape(outer, inner), classes, self.ignore)

    def write_loss(self, top, loss):
        """top[0] = the summed loss / normalizer; top[1] = p."""
        top[0].data[...] = loss / self._normalizer()
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(top[1].shape)

    def write_grad(self, grad, top, bottom):
        """bottom[0].grad = grad (outer, classes, inner), 0 at ignored positions, times top.grad / normalizer."""
        grad *= self.valid[:, None, :]
        scale = float(top[0].grad) / self._normalizer()
        bottom[0].grad[...] = (grad * scale).reshape(bottom[0].shape)

    def _normalizer(self):
        outer, _, inner = self.layout
        return normalizer(self.mode, outer, inner, int(np.count_nonzero(self.valid)))
