"""Axis arithmetic shared by layers that take an `axis` option (Caffe's CanonicalAxisIndex and count(start, end))."""

import numpy as np

from caffelite.errors import ShapeError


def canonical_axis(layer, axis, num_axes):
    """`axis` in [-num_axes, num_axes) as a non-negative index; negative values count from the end."""
    if not -num_axes <= axis < num_axes:
        raise ShapeError(f"{layer.describe()}: axis {axis} out of range for a {num_axes}-axis blob")
    return axis % num_axes


def count(shape, start=0, end=None):
    """Number of elements spanned by shape[start:end] (1 for an empty range)."""
    return int(np.prod(shape[start:end], dtype=np.int64))


def check_image_batch(layer, shape):
    """Raise unless `shape` has the 4 axes (num, channels, height, width) of a 2-D spatial layer's input."""
    if len(shape) != 4:
        raise ShapeError(f"{layer.describe()}: input must have 4 axes (num, channels, height, width), "
                         f"got shape {shape}")
