"""Spatial pyramid pooling: pool the whole image on 1x1, 2x2, 4x4, ... grids and concatenate the results."""

import numpy as np

from caffelite.errors import CaffeliteError, NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import check_image_batch
from caffelite.layers._in_place import refuse_in_place
from caffelite.layers.pooling import Pooling
from caffelite.phase import TRAIN
from caffelite.proto import caffe_pb2
from caffelite.tensor import Tensor


@register_layer("SPP")
class SPP(Function):
    """y[n] = concat_l flatten(pool_l(x[n])), level l < pyramid_height pooling on a 2^l x 2^l grid.

    Level l uses Caffe's Pooling with kernel ceil(H / 2^l), stride = kernel, pad (kernel 2^l - H + 1) / 2 (and
    the same for W), so every rule of Pooling (ceil rounding, AVE divisors, MAX ties) applies. With
    pyramid_height 1 the top is the pooled (N, C, 1, 1) blob itself, as in Caffe. Caffe builds its inner Pooling
    layers in the TRAIN phase whatever the net's phase, so STOCHASTIC samples even in TEST; this does the same.
    """

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        spp = self.param.spp_param
        self.height = spp.pyramid_height
        if self.height < 1:
            raise NetError(f"{self.describe()}: pyramid_height must be at least 1, got {self.height}")
        # SPPParameter.PoolMethod and PoolingParameter.PoolMethod number MAX, AVE, STOCHASTIC alike.
        self.method = spp.pool
        self._shape = None
        self._levels = []
        self._scratch = Tensor(dtype=self.dtype)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        check_image_batch(self, shape)
        if min(shape[2:]) <= 0:
            raise ShapeError(f"{self.describe()}: input height and width must be positive, got {shape[2:]}")
        if shape != self._shape:
            self._levels = [self._build_level(level, bottom) for level in range(self.height)]
            self._shape = shape
        self.num = shape[0]
        if self.height == 1:
            top[0].reshape(self._levels[0][1].shape)
        else:
            top[0].reshape(shape[0], sum(pooled.count // shape[0] for _, pooled in self._levels))

    def _build_level(self, level, bottom):
        """A Pooling layer for one pyramid level, with Caffe's kernel, stride and pad for this input size."""
        param = caffe_pb2.LayerParameter(name=f"{self.name} level {level}", type="Pooling")
        pool = param.pooling_param
        pool.pool = self.method
        bins = 2 ** level
        for axis, size in zip("hw", bottom[0].shape[2:]):
            kernel = -(-size // bins)
            setattr(pool, f"kernel_{axis}", kernel)
            setattr(pool, f"stride_{axis}", kernel)
            setattr(pool, f"pad_{axis}", (kernel * bins - size + 1) // 2)
        layer = Pooling(param, phase=TRAIN, dtype=self.dtype)
        pooled = Tensor(dtype=self.dtype)
        try:
            layer.setup(bottom, [pooled])
            layer.reshape(bottom, [pooled])
        except CaffeliteError as error:
            raise type(error)(f"{self.describe()}: pyramid level {level} of a {bottom[0].shape[2]}x"
                              f"{bottom[0].shape[3]} input: {error}") from None
        return layer, pooled

    def forward(self, bottom, top):
        if self.height == 1:
            self._levels[0][0].forward(bottom, top)
            return
        columns = top[0].data
        start = 0
        for pool, pooled in self._levels:
            pool.forward(bottom, [pooled])
            width = pooled.count // self.num
            columns[:, start:start + width] = pooled.data.reshape(self.num, width)
            start += width

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.height == 1:
            self._levels[0][0].backward(top, propagate_down, bottom)
            return
        # Every level assigns a full input grad; they are summed here. The scratch Tensor reads the same data.
        scratch = self._scratch
        scratch.data = bottom[0].data
        scratch.grad = np.empty_like(bottom[0].grad)
        total = np.zeros_like(bottom[0].grad)
        start = 0
        for pool, pooled in self._levels:
            width = pooled.count // self.num
            pooled.grad[...] = top[0].grad[:, start:start + width].reshape(pooled.shape)
            pool.backward([pooled], [True], [scratch])
            total += scratch.grad
            start += width
        bottom[0].grad[...] = total
