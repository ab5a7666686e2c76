"""Upsample (caffelite addition, SegNet's fields): enlarge H and W by nearest or bilinear resampling, or unpool.

Output size: upsample_h x upsample_w when both are given, else H * scale_h - pad_out_h by W * scale_w - pad_out_w
(scale_h/scale_w together, or `scale` (default 2) for both; pad_out needs scale 2, as in SegNet).
One bottom: NEAREST y[i, j] = x[i // s_h, j // s_w] (x[i H / H_out, j W / W_out] for explicit sizes), or
BILINEAR with pixel centres aligned (x read at (i + 1/2) / s - 1/2, clamped: OpenCV's and PyTorch's
align_corners=False rule); the corner-aligned rule is the Interp layer's.
Two bottoms (SegNet unpooling): bottom[1] is a MAX Pooling mask (flat index h * W_out + w per value); each value
goes to its argmax position, every other output is 0. Positions hit twice keep the later value (as SegNet does),
and backward gives each input the grad at its position. The mask gets no gradient.
"""

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import check_image_batch
from caffelite.layers._in_place import refuse_in_place
from caffelite.layers._resample import half_pixel_linear, nearest, resize, resize_adjoint
from caffelite.proto import caffe_pb2

_MODE = caffe_pb2.UpsampleParameter


@register_layer("Upsample")
class Upsample(Function):
    """y = x resampled to the larger grid (nearest or bilinear), or y[mask] = x (unpooling with a second bottom)."""

    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        up = self.param.upsample_param
        self.unpool = len(bottom) == 2
        self.bilinear = up.mode == _MODE.BILINEAR
        if self.unpool and self.bilinear:
            raise NetError(f"{self.describe()}: unpooling with a mask bottom takes no mode BILINEAR")
        has = up.HasField
        if has("upsample_h") or has("upsample_w"):
            if not (has("upsample_h") and has("upsample_w")):
                raise NetError(f"{self.describe()}: give both upsample_h and upsample_w")
            self.size = (up.upsample_h, up.upsample_w)
            if min(self.size) < 1:
                raise NetError(f"{self.describe()}: upsample_h and upsample_w must be positive, got {list(self.size)}")
            return
        self.size = None
        if has("scale_h") or has("scale_w"):
            if not (has("scale_h") and has("scale_w")) or has("scale"):
                raise NetError(f"{self.describe()}: give scale, or both scale_h and scale_w (not both forms)")
            self.scale = (up.scale_h, up.scale_w)
        else:
            self.scale = (up.scale, up.scale)
        if min(self.scale) < 1:
            raise NetError(f"{self.describe()}: scale must be at least 1, got {list(self.scale)}")
        self.trim = (int(up.pad_out_h), int(up.pad_out_w))
        for name, trim, scale in zip(("pad_out_h", "pad_out_w"), self.trim, self.scale):
            if trim and scale != 2:
                raise NetError(f"{self.describe()}: {name} needs a scale of 2 on its axis, got {scale}")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        check_image_batch(self, shape)
        if self.unpool and bottom[1].shape != shape:
            raise ShapeError(f"{self.describe()}: the mask has shape {bottom[1].shape}, the input {shape}")
        in_size = shape[2:]
        if self.size is not None:
            out_size = self.size
        else:
            out_size = tuple(n * s - t for n, s, t in zip(in_size, self.scale, self.trim))
        top[0].reshape(shape[:2] + tuple(out_size))
        if not self.unpool:
            self._rules = [self._rule(axis, n, m) for axis, (n, m) in enumerate(zip(in_size, out_size))]

    def _rule(self, axis, size_in, size_out):
        scale = None if self.size is not None else self.scale[axis]
        if self.bilinear:
            return half_pixel_linear(size_in, size_out, 1.0 / scale if scale else size_in / size_out, self.dtype)
        return nearest(size_in, size_out, scale)

    def forward(self, bottom, top):
        if self.unpool:
            flat = top[0].data.reshape(self._planes(top[0]))
            flat.fill(0)
            np.put_along_axis(flat, self._positions(bottom[1], top[0]), bottom[0].data.reshape(flat.shape[0], -1),
                              axis=1)
            return
        top[0].data[...] = resize(self._rules, bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.unpool:
            dy = top[0].grad.reshape(self._planes(top[0]))
            picked = np.take_along_axis(dy, self._positions(bottom[1], top[0]), axis=1)
            bottom[0].grad[...] = picked.reshape(bottom[0].shape)
            return
        bottom[0].grad[...] = resize_adjoint(self._rules, top[0].grad)

    def _planes(self, blob):
        return (blob.shape[0] * blob.shape[1], blob.shape[2] * blob.shape[3])

    def _positions(self, mask, top):
        """The mask as integer flat positions per (image, channel) plane, checked against the output size."""
        positions = mask.data.reshape(mask.shape[0] * mask.shape[1], -1).astype(np.intp)
        plane = top.shape[2] * top.shape[3]
        if positions.size and (positions.min() < 0 or positions.max() >= plane):
            raise ShapeError(
                f"{self.describe()}: mask index {int(positions.min() if positions.min() < 0 else positions.max())} "
                f"is outside the {top.shape[2]}x{top.shape[3]} output; the scale must match the pooling layer "
                "that wrote the mask"
            )
        return positions
