"""Fillers: how learnable params get their first values (FillerParameter.type)."""

import numpy as np

from caffelite.errors import ShapeError
from caffelite.proto import caffe_pb2
from caffelite.registry import Registry
from caffelite.rng import rng

FILLERS = Registry("filler")
_NORM = caffe_pb2.FillerParameter


def fill(array, filler_param):
    """Fill `array` in place as `filler_param` (a caffe_pb2.FillerParameter) says."""
    values = FILLERS.get(filler_param.type)(array.shape, filler_param)
    array[...] = values


def _fan(shape, filler_param):
    """Caffe's n: fan_in = count/shape[0], fan_out = count/shape[1], chosen by variance_norm."""
    count = int(np.prod(shape))
    fan_in = count / shape[0]
    fan_out = count / shape[1] if len(shape) > 1 else count
    norm = filler_param.variance_norm
    if norm == _NORM.FAN_OUT:
        return fan_out
    if norm == _NORM.AVERAGE:
        return (fan_in + fan_out) / 2
    return fan_in


@FILLERS.register("constant")
def constant(shape, p):
    return np.full(shape, p.value)


@FILLERS.register("uniform")
def uniform(shape, p):
    return rng().uniform(p.min, p.max, size=shape)


@FILLERS.register("gaussian")
def gaussian(shape, p):
    values = rng().normal(p.mean, p.std, size=shape)
    if p.sparse >= 0:
        # Each output (row) keeps on average `sparse` nonzero inputs.
        keep = rng().random(size=shape) < p.sparse / shape[0]
        values = values * keep
    return values


@FILLERS.register("positive_unitball")
def positive_unitball(shape, p):
    values = rng().uniform(0, 1, size=shape)
    rows = values.reshape(shape[0], -1)
    return (rows / rows.sum(axis=1, keepdims=True)).reshape(shape)


@FILLERS.register("xavier")
def xavier(shape, p):
    scale = np.sqrt(3.0 / _fan(shape, p))
    return rng().uniform(-scale, scale, size=shape)


@FILLERS.register("msra")
def msra(shape, p):
    return rng().normal(0.0, np.sqrt(2.0 / _fan(shape, p)), size=shape)


@FILLERS.register("bilinear")
def bilinear(shape, p):
    """Bilinear upsampling weights for a (C, 1, K, K) Deconvolution kernel (K = 2f - f%2, stride f).

    w[y, x] = (1 - |x/f - c|) * (1 - |y/f - c|) with f = ceil(K/2), c = (K-1)/(2f), the same for every channel.
    """
    if len(shape) != 4:
        raise ShapeError(f"bilinear filler needs a 4-D blob, got shape {tuple(shape)}")
    height, width = shape[-2], shape[-1]
    if height != width:
        raise ShapeError(f"bilinear filler needs a square kernel, got {height}x{width}")
    factor = np.ceil(width / 2.0)
    # The centre comes from the kernel size itself, so kernels not of the form 2f - f%2 match Caffe too.
    centre = (width - 1) / (2.0 * factor)
    taps = 1 - np.abs(np.arange(width) / factor - centre)
    return np.broadcast_to(np.outer(taps, taps), shape).copy()
