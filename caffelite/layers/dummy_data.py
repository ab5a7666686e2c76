"""Tops filled by fillers: constant ones once, random ones afresh at every forward."""

from caffelite.errors import NetError
from caffelite.fillers import fill
from caffelite.function import Function, register_layer
from caffelite.proto import caffe_pb2


@register_layer("DummyData")
class DummyData(Function):
    """top_i = data_filler_i(shape_i); a constant filler fills at setup only, any other refills every forward"""

    exact_num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        dummy_param = self.param.dummy_data_param
        self.fillers = self._one_or_per_top(
            list(dummy_param.data_filler) or [caffe_pb2.FillerParameter(type="constant", value=0)],
            len(top),
            "data_filler",
        )
        for tensor, shape, filler in zip(top, self._shapes(dummy_param, len(top)), self.fillers):
            tensor.reshape(shape)
            if filler.type == "constant":
                fill(tensor.data, filler)

    def reshape(self, bottom, top):
        """Nothing: the shapes are fixed at setup."""

    def forward(self, bottom, top):
        for tensor, filler in zip(top, self.fillers):
            if filler.type != "constant":
                fill(tensor.data, filler)

    def _shapes(self, dummy_param, num_top):
        legacy = [dummy_param.num, dummy_param.channels, dummy_param.height, dummy_param.width]
        if not any(legacy):
            shapes = self._one_or_per_top(list(dummy_param.shape), num_top, "shape")
            return [tuple(shape.dim) for shape in shapes]
        if dummy_param.shape:
            raise NetError(f"{self.describe()}: give either 'shape' or num/channels/height/width, not both")
        names = ("num", "channels", "height", "width")
        per_axis = [self._one_or_per_top(list(v), num_top, name) for v, name in zip(legacy, names)]
        return list(zip(*per_axis))

    def _one_or_per_top(self, values, num_top, field):
        if len(values) == 1:
            return values * num_top
        if len(values) == num_top:
            return values
        raise NetError(
            f"{self.describe()}: give '{field}' once or once per top ({num_top} tops), got {len(values)}"
        )
