"""How Bias and Scale apply an operand to a blob: the operand's axes match x.shape[axis:axis + k].

Seen that way, x is (outer, dim, inner) = (count before axis, operand count, count after the operand's axes) and
the operand broadcasts as a (dim, 1) array.
"""

from caffelite.errors import NetError, ShapeError
from caffelite.layers._axis import canonical_axis, count


def learned_operand_shape(layer, shape, axis, num_axes):
    """The shape of a learned operand: `num_axes` axes of the input from `axis` (-1: through the last axis)."""
    axis = canonical_axis(layer, axis, len(shape))
    if num_axes < -1:
        raise NetError(f"{layer.describe()}: num_axes must be non-negative, or -1 for all axes from axis on; "
                       f"got {num_axes}")
    if num_axes >= 0 and axis + num_axes > len(shape):
        raise ShapeError(f"{layer.describe()}: {num_axes} axes from axis {axis} extend past the input's shape {shape}")
    return tuple(shape[axis:] if num_axes == -1 else shape[axis:axis + num_axes])


def split_dims(layer, shape, operand_shape, axis):
    """(outer, dim, inner) for applying an operand of `operand_shape` to an input of `shape` from `axis`."""
    # A scalar operand fits anywhere; Caffe then ignores `axis` entirely (even an out-of-range one).
    axis = 0 if not operand_shape else canonical_axis(layer, axis, len(shape))
    end = axis + len(operand_shape)
    if end > len(shape) or tuple(shape[axis:end]) != tuple(operand_shape):
        raise ShapeError(
            f"{layer.describe()}: operand of shape {tuple(operand_shape)} does not match the input's shape "
            f"{tuple(shape)} from axis {axis} on"
        )
    return count(shape, 0, axis), count(operand_shape), count(shape, end)


def sum_to_operand(values, dims, operand_shape):
    """Sum an input-shaped array over its outer and inner dims, giving an operand-shaped array."""
    return values.reshape(dims).sum(axis=(0, 2)).reshape(operand_shape)
