"""Interp (caffelite addition, the PSPNet/DeepLab forks' layer): bilinear resize with corners aligned."""

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import check_image_batch
from caffelite.layers._in_place import refuse_in_place
from caffelite.layers._resample import corner_aligned_linear, resize, resize_adjoint


@register_layer("Interp")
class Interp(Function):
    """y = bilinear resize of x cropped by pad_beg/pad_end (<= 0); out(i) reads in(i (H_in - 1) / (H_out - 1)).

    Output size, first rule that applies (the forks' order): shrink_factor only: (H_eff - 1) / shrink + 1;
    zoom_factor only: H_eff + (H_eff - 1)(zoom - 1); height and width; both factors: shrink, then zoom;
    else a second bottom's H and W (it gets no gradient). H_eff = H + pad_beg + pad_end; pad_beg crops both
    the top rows and the left columns, as in the forks. Equal sizes copy.
    """

    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        interp = self.param.interp_param
        self.pad_beg, self.pad_end = interp.pad_beg, interp.pad_end
        if self.pad_beg > 0 or self.pad_end > 0:
            raise NetError(f"{self.describe()}: only pad_beg/pad_end <= 0 (cropping) are supported, got "
                           f"{self.pad_beg} and {self.pad_end}")
        has = interp.HasField
        for name in ("zoom_factor", "shrink_factor"):
            if has(name) and getattr(interp, name) < 1:
                raise NetError(f"{self.describe()}: {name} must be at least 1, got {getattr(interp, name)}")
        if not (has("zoom_factor") or has("shrink_factor") or (has("height") and has("width")) or len(bottom) == 2):
            raise NetError(f"{self.describe()}: give height and width, zoom_factor and/or shrink_factor, "
                           "or a second bottom of the wanted size")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        check_image_batch(self, shape)
        self.in_size = shape[2:]
        self.eff_size = tuple(n + self.pad_beg + self.pad_end for n in self.in_size)
        if min(self.eff_size) <= 0:
            raise ShapeError(f"{self.describe()}: cropping {-self.pad_beg} + {-self.pad_end} cells leaves nothing "
                             f"of the {self.in_size[0]}x{self.in_size[1]} input")
        out_size = self._output_size(bottom)
        if min(out_size) <= 0:
            raise ShapeError(f"{self.describe()}: output size {list(out_size)} must be positive")
        top[0].reshape(shape[:2] + out_size)
        self.copy = out_size == self.eff_size
        self._rules = [corner_aligned_linear(n, m, self.dtype) for n, m in zip(self.eff_size, out_size)]
        start = -self.pad_beg
        self._crop = (Ellipsis,) + tuple(slice(start, start + n) for n in self.eff_size)

    def _output_size(self, bottom):
        interp = self.param.interp_param
        has = interp.HasField
        shrink, zoom = interp.shrink_factor, interp.zoom_factor
        if has("shrink_factor") and not has("zoom_factor"):
            return tuple((n - 1) // shrink + 1 for n in self.eff_size)
        if has("zoom_factor") and not has("shrink_factor"):
            return tuple(n + (n - 1) * (zoom - 1) for n in self.eff_size)
        if has("height") and has("width"):
            return (interp.height, interp.width)
        if has("shrink_factor") and has("zoom_factor"):
            return tuple(((n - 1) // shrink) * zoom + 1 for n in self.eff_size)
        if bottom[1].num_axes != 4:
            raise ShapeError(f"{self.describe()}: the size reference bottom[1] must have 4 axes, got "
                             f"{bottom[1].shape}")
        return bottom[1].shape[2:]

    def forward(self, bottom, top):
        x = bottom[0].data[self._crop]
        if self.copy:
            top[0].data[...] = x
            return
        top[0].data[...] = resize(self._rules, x)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].grad
        dx.fill(0)
        if self.copy:
            dx[self._crop] = top[0].grad
            return
        dx[self._crop] = resize_adjoint(self._rules, top[0].grad)
