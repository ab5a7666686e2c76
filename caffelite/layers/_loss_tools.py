"""What the losses beyond SoftmaxWithLoss share: Caffe's log clamp, input checks, and losses on a difference a - b."""

from caffelite.errors import NetError, ShapeError
from caffelite.layers._loss import Loss

# Caffe's kLOG_THRESHOLD: probabilities are clamped to this before the log (MultinomialLogistic, Infogain).
LOG_THRESHOLD = 1e-20


def refuse_gradient(layer, propagate_down, index, what):
    """Caffe aborts when asked for the gradient of an input that has none (labels, the infogain matrix)."""
    if len(propagate_down) > index and propagate_down[index]:
        raise NetError(f"{layer.describe()}: cannot backpropagate to the {what} (bottom[{index}])")


def one_label_per_item(layer, labels):
    """Check that bottom `labels` holds exactly one value per item of the batch, e.g. (N,) or (N, 1, 1, 1)."""
    if labels.count != labels.shape[0]:
        raise ShapeError(f"{layer.describe()}: expects one label per item, shaped (N,) or (N, 1, 1, 1); "
                         f"got labels of shape {labels.shape}")


def legacy_shape(layer, tensor, name):
    """(num, channels, height, width) as Caffe's legacy accessors see `tensor`: trailing axes read as 1."""
    if tensor.num_axes > 4:
        raise ShapeError(f"{layer.describe()}: {name} needs at most 4 axes, got shape {tensor.shape}")
    return tensor.shape + (1,) * (4 - tensor.num_axes)


def assign_pair_grads(bottom, propagate_down, grad):
    """Give bottom[0] the gradient `grad` (shaped like bottom[0]) and bottom[1] its negative, as asked."""
    for index, sign in ((0, 1), (1, -1)):
        if propagate_down[index]:
            bottom[index].grad[...] = (grad if sign > 0 else -grad).reshape(bottom[index].shape)


def zero_grads(bottom, propagate_down, indices):
    """Inputs the loss treats as constants (similarity flags, weights) get a zero gradient when one is asked for."""
    for index in indices:
        if index < len(bottom) and propagate_down[index]:
            bottom[index].grad[...] = 0


class DifferenceLoss(Loss):
    """A loss on a - b for bottoms a, b; every bottom (extra ones are element weights) matches a's size per item.

    Both a and b may be predictions, so both take gradients; any further bottoms do not.
    """

    def allow_force_backward(self, bottom_index):
        return bottom_index < 2

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        for index in range(1, len(bottom)):
            if bottom[index].shape[:1] != bottom[0].shape[:1] or bottom[index].count != bottom[0].count:
                raise ShapeError(
                    f"{self.describe()}: bottom[{index}] of shape {bottom[index].shape} does not match "
                    f"bottom[0] of shape {bottom[0].shape} (same first dimension and size expected)"
                )

    def difference(self, bottom):
        return bottom[0].data - bottom[1].data.reshape(bottom[0].shape)

    def weight(self, bottom, index):
        """bottom[index] shaped like bottom[0]."""
        return bottom[index].data.reshape(bottom[0].shape)

