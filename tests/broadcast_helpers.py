"""What the Bias and Scale tests share: where axis/num_axes put the second operand on an input (Caffe's rule)."""

import numpy as np

SHAPE = (2, 3, 4, 2)

# (axis, num_axes, canonical axis, operand shape) for a learned bias or scale on a SHAPE input.
PLACEMENTS = [
    (None, None, 1, (3,)),
    (1, 0, 0, ()),
    (1, 2, 1, (3, 4)),
    (1, -1, 1, (3, 4, 2)),
    (0, 1, 0, (2,)),
    (0, -1, 0, SHAPE),
    (-1, 1, 3, (2,)),
    (-2, 2, 2, (4, 2)),
]


def axis_options(axis, num_axes):
    """The axis and num_axes fields of bias_param or scale_param, each left out when None."""
    return ("" if axis is None else f"axis: {axis} ") + ("" if num_axes is None else f"num_axes: {num_axes} ")


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)
