"""pycaffe's coord_map: how spatial coordinates move through NetSpec layers, and a Crop that aligns two tops.

A layer's map is (axis, scale, shift): input coordinate x lands at output coordinate scale * x + shift on every
spatial axis, the axes after `axis` (None when the layer does not care, as for pointwise layers). Maps compose
along a path of layers and invert for the way back, so two tops with a common ancestor can be related:
`coord_map_from_to(a, b)` takes coordinates of `a` to those of `b`, and `crop(a, b)` builds the Crop layer that cuts
`a` down to line up with `b`.
"""

from collections import deque

import numpy as np

from caffelite.errors import CaffeliteError
from caffelite.net_spec import layers as L

# Layers whose output pixel i depends only on input pixel i: the identity map.
PASS_THROUGH_LAYERS = [
    "AbsVal", "BatchNorm", "Bias", "BNLL", "Clip", "Dropout", "Eltwise", "ELU", "Exp", "Log", "LRN", "MVN",
    "Power", "PReLU", "ReLU", "Scale", "Sigmoid", "Split", "Swish", "TanH", "Threshold",
]
_WINDOW_LAYERS = ("Convolution", "Pooling", "Im2col")
_IDENTITY = (None, 1, 0)


class CoordMapError(CaffeliteError):
    """Coordinates cannot be related the way the caller asked."""


class UndefinedMapException(CoordMapError):
    """The layer type has no coordinate map (InnerProduct, Reshape, ...): the walk stops there."""


class AxisMismatchException(CoordMapError):
    """Two maps on a path disagree on the first spatial axis."""


class UnconnectedTopsError(CoordMapError, RuntimeError):
    """The two tops share no ancestor reachable through mappable layers (a RuntimeError too, as in pycaffe)."""


class CropError(CoordMapError, AssertionError):
    """crop() cannot cut one top to the other: scales differ, or the offset is negative or fractional.

    An AssertionError too, which is what pycaffe's crop raises.
    """


def _layer_options(fn, own_message):
    """The keyword options of a NetSpec layer, read from `<own_message>=dict(...)` when given that way."""
    nested = fn.params.get(own_message)
    return nested if isinstance(nested, dict) else fn.params


def conv_params(fn):
    """(axis, stride, effective kernel extent, pad) of a Convolution / Deconvolution / Im2col / Pooling node.

    The effective extent of a dilated kernel is (kernel_size - 1) * dilation + 1. Each is a 1-D array: one value
    for all spatial axes, or one per axis.
    """
    own = "pooling_param" if fn.type_name == "Pooling" else "convolution_param"
    options = _layer_options(fn, own)
    legacy = {"kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w"} & set(options)
    if legacy:
        raise CoordMapError(f"{fn.type_name}: coordinate maps need kernel_size/stride/pad, not {sorted(legacy)}")
    if "kernel_size" not in options:
        raise UndefinedMapException(f"{fn.type_name} without kernel_size (global pooling?) has no coordinate map")
    kernel = np.array(options["kernel_size"], ndmin=1)
    dilation = np.array(options.get("dilation", 1), ndmin=1)
    stride = np.array(options.get("stride", 1), ndmin=1)
    pad = np.array(options.get("pad", 0), ndmin=1)
    return options.get("axis", 1), stride, (kernel - 1) * dilation + 1, pad


def crop_params(fn):
    """(axis, offset) of a Crop node; Caffe's defaults are axis 2 (the first spatial axis of NCHW) and offset 0."""
    options = _layer_options(fn, "crop_param")
    return options.get("axis", 2), np.array(options.get("offset", 0), ndmin=1)


def coord_map(fn):
    """(axis, scale, shift) of one NetSpec layer node: input coordinate x goes to scale * x + shift.

    A window layer (stride s, extent k, pad p) centres output i on input s * i + (k - 1) / 2 - p, so its map is the
    inverse of that; a Deconvolution is the mirror image. A Crop's `axis` is its first cropped axis, and a map's
    axis is the one before, hence axis - 1.
    """
    kind = fn.type_name
    if kind in _WINDOW_LAYERS:
        axis, stride, extent, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (extent - 1) / 2) / stride
    if kind == "Deconvolution":
        axis, stride, extent, pad = conv_params(fn)
        return axis, stride, (extent - 1) / 2 - pad
    if kind in PASS_THROUGH_LAYERS:
        return _IDENTITY
    if kind == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset
    raise UndefinedMapException(f"no coordinate map for layer type {kind}")


def compose(base_map, next_map):
    """`next_map` followed by `base_map` (x -> base(next(x))): scales multiply, next's shift is scaled by base's."""
    base_axis, base_scale, base_shift = base_map
    next_axis, next_scale, next_shift = next_map
    if base_axis is not None and next_axis is not None and base_axis != next_axis:
        raise AxisMismatchException(f"coordinate maps on axis {base_axis} and axis {next_axis} cannot compose")
    axis = next_axis if base_axis is None else base_axis
    return axis, base_scale * next_scale, base_scale * next_shift + base_shift


def inverse(mapping):
    """The map that undoes `mapping`: x = (y - shift) / scale."""
    axis, scale, shift = mapping
    return axis, 1 / scale, -shift / scale


def _mappable_bottoms(top):
    # A Crop's second bottom only supplies the output size; coordinates flow through the first one alone.
    bottoms = top.fn.inputs
    return bottoms[:1] if top.fn.type_name == "Crop" else bottoms


def _ancestors(top, stop=None):
    """Yield (ancestor, map from the ancestor's coordinates to `top`'s), nearest first, `top` itself included.

    Stops at layers without a map; stops early when `stop(ancestor)` is true.
    """
    maps = {top: _IDENTITY}
    queue = deque([top])
    while queue:
        current = queue.popleft()
        yield current, maps[current]
        if stop is not None and stop(current):
            return
        try:
            step = coord_map(current.fn)
        except UndefinedMapException:
            continue
        for bottom in _mappable_bottoms(current):
            if bottom not in maps:
                maps[bottom] = compose(maps[current], step)
                queue.append(bottom)


def coord_map_from_to(top_from, top_to):
    """(axis, scale, shift) taking coordinates of `top_from` to coordinates of `top_to`.

    Both tops are walked back to their nearest shared ancestor: from's path is undone, then to's path applied.
    """
    from_maps = dict(_ancestors(top_from))
    for ancestor, to_map in _ancestors(top_to, stop=from_maps.__contains__):
        if ancestor in from_maps:
            return compose(to_map, inverse(from_maps[ancestor]))
    raise UnconnectedTopsError(
        f"cannot map {top_from!r} onto {top_to!r}: no common ancestor through layers with coordinate maps"
    )


def crop(top_from, top_to):
    """A NetSpec Crop layer that cuts `top_from` to line up with `top_to` (axis and offsets from their mapping)."""
    axis, scale, shift = coord_map_from_to(top_from, top_to)
    scale, shift = np.asarray(scale, dtype=float), np.asarray(shift, dtype=float)
    if not np.all(scale == 1):
        raise CropError(f"cannot crop across a change of scale (scale {scale})")
    if not np.all(shift <= 0):
        raise CropError(f"cannot crop by a negative offset (shift {shift}): the top to crop is the smaller one")
    if not np.all(np.round(shift) == shift):
        raise CropError(f"cannot crop by a fractional offset (shift {shift})")
    offsets = [int(value) for value in np.atleast_1d(-np.round(shift))]
    # +1: a map's axis is the one before the spatial axes, Crop's is the first axis it cuts.
    return L.Crop(top_from, top_to, crop_param=dict(axis=axis + 1, offset=offsets))
