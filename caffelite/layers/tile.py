"""Repeat a blob along one axis."""

from caffelite.errors import NetError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis, count
from caffelite.layers._in_place import refuse_in_place


@register_layer("Tile")
class Tile(Function):
    """y = x repeated `tiles` times as a whole block along tile_param.axis (default 1); dx = sum of the tiles of dy"""

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        tile_param = self.param.tile_param
        if not tile_param.HasField("tiles"):
            raise NetError(f"{self.describe()}: tile_param.tiles (the number of copies) is required")
        self.tiles = tile_param.tiles
        if self.tiles <= 0:
            raise NetError(f"{self.describe()}: tiles must be positive, got {self.tiles}")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        axis = canonical_axis(self, self.param.tile_param.axis, len(shape))
        # Everything from `axis` on is one block, repeated whole: (outer, 1, inner) -> (outer, tiles, inner).
        self.outer, self.inner = count(shape, 0, axis), count(shape, axis)
        top[0].reshape(shape[:axis] + (shape[axis] * self.tiles,) + shape[axis + 1:])

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.outer, 1, self.inner)
        top[0].data.reshape(self.outer, self.tiles, self.inner)[...] = x

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dy = top[0].grad.reshape(self.outer, self.tiles, self.inner)
            bottom[0].grad[...] = dy.sum(axis=1).reshape(bottom[0].shape)
