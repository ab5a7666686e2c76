"""convolution_param's window geometry (kernel, stride, pad, dilation per spatial axis), read as Caffe reads it."""

from collections import namedtuple

from caffelite.errors import NetError, ShapeError

Geometry = namedtuple("Geometry", "kernel stride pad dilation")


def read_geometry(layer, conv, num_spatial):
    """Kernel, stride, pad and dilation, one value per spatial axis, with Caffe's defaults and checks."""
    geometry = Geometry(
        kernel=_per_axis(layer, conv, num_spatial, "kernel_size", "kernel_h", "kernel_w", default=None),
        stride=_per_axis(layer, conv, num_spatial, "stride", "stride_h", "stride_w", default=1),
        pad=_per_axis(layer, conv, num_spatial, "pad", "pad_h", "pad_w", default=0),
        dilation=_per_axis(layer, conv, num_spatial, "dilation", None, None, default=1),
    )
    for name, values in (("kernel size", geometry.kernel), ("stride", geometry.stride),
                         ("dilation", geometry.dilation)):
        if any(v <= 0 for v in values):
            raise NetError(f"{layer.describe()}: {name} must be positive on every axis, got {list(values)}")
    return geometry


def output_shape(layer, geometry, in_shape):
    """floor((in + 2 pad - extent) / stride) + 1 per spatial axis, extent = dilation (kernel - 1) + 1."""
    out = []
    for i, (n, k, s, p, d) in enumerate(zip(in_shape, *geometry)):
        extent = d * (k - 1) + 1
        if n + 2 * p < extent:
            raise ShapeError(
                f"{layer.describe()}: spatial axis {i} has {n} cells (+{p} padding each side), smaller than the "
                f"kernel extent {extent}"
            )
        out.append((n + 2 * p - extent) // s + 1)
    return tuple(out)


def check_num_axes(layer, shape, axis, num_spatial):
    """Raise unless `shape` still has the axes the layer was set up for: batch axes, channels, spatial axes."""
    if len(shape) != axis + 1 + num_spatial:
        raise ShapeError(f"{layer.describe()}: input has {len(shape)} axes, set up for {axis + 1 + num_spatial}")


def windows_are_disjoint(geometry):
    """True when no two windows share a cell on any axis (stride >= extent), so col2im may store instead of add."""
    return all(s >= d * (k - 1) + 1 for k, s, d in zip(geometry.kernel, geometry.stride, geometry.dilation))


def _per_axis(layer, conv, num_spatial, name, h_name, w_name, default):
    """From `name` (given once, or once per spatial axis) or its _h/_w pair (2-D only); `default` when absent."""
    values = list(getattr(conv, name))
    if h_name is not None and (conv.HasField(h_name) or conv.HasField(w_name)):
        if num_spatial != 2:
            raise NetError(f"{layer.describe()}: {h_name}/{w_name} need 2 spatial axes, the input has {num_spatial}")
        if values:
            raise NetError(f"{layer.describe()}: give either {name} or {h_name}/{w_name}, not both")
        return (getattr(conv, h_name), getattr(conv, w_name))
    if not values and default is not None:
        return (default,) * num_spatial
    if len(values) == 1:
        return (values[0],) * num_spatial
    if len(values) != num_spatial:
        raise NetError(
            f"{layer.describe()}: {name} must be given once or once per spatial axis ({num_spatial}), "
            f"got {len(values)} values"
        )
    return tuple(values)
