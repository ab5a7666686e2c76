"""Cut a window out of a blob to match another blob's shape."""

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis
from caffelite.layers._in_place import refuse_in_place


@register_layer("Crop")
class Crop(Function):
    """y = x[..., o_a : o_a + s_a, ...] for every axis a >= crop_param.axis (default 2), s = bottom[1]'s shape,
    o = crop_param.offset (none: 0, one: the same for every cropped axis, else one per cropped axis);
    dx = dy placed back at the window, 0 elsewhere. bottom[1] only gives the shape."""

    exact_num_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        self.offsets = list(self.param.crop_param.offset)

    def reshape(self, bottom, top):
        shape, reference = bottom[0].shape, bottom[1].shape
        start = self._start_axis(len(shape))
        if len(reference) < len(shape):
            raise ShapeError(
                f"{self.describe()}: the reference (bottom[1], shape {reference}) needs at least the "
                f"{len(shape)} axes of the input (shape {shape})"
            )
        window, new_shape = [], list(shape)
        for i in range(start, len(shape)):
            offset = self._offset(i - start)
            if offset + reference[i] > shape[i]:
                raise ShapeError(
                    f"{self.describe()}: crop of size {reference[i]} at offset {offset} does not fit axis {i} of "
                    f"size {shape[i]} (input {shape}, reference {reference})"
                )
            window.append(slice(offset, offset + reference[i]))
            new_shape[i] = reference[i]
        self.window = (slice(None),) * start + tuple(window)
        top[0].reshape(new_shape)

    def _start_axis(self, num_axes):
        start = canonical_axis(self, self.param.crop_param.axis, num_axes)
        if len(self.offsets) > 1 and start + len(self.offsets) != num_axes:
            raise NetError(
                f"{self.describe()}: {len(self.offsets)} offsets for the {num_axes - start} axes from axis {start} "
                f"on (give one offset, or one per cropped axis)"
            )
        return start

    def _offset(self, cropped_index):
        if not self.offsets:
            return 0
        return self.offsets[0] if len(self.offsets) == 1 else self.offsets[cropped_index]

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.window]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = 0
            bottom[0].grad[self.window] = top[0].grad
        if propagate_down[1]:
            bottom[1].grad[...] = 0  # only its shape is used
