"""A learnable blob offered to the net as a top."""

from caffelite.errors import CaffeliteError, NetError
from caffelite.function import Function, register_layer


@register_layer("Parameter")
class Parameter(Function):
    """y = W, W of shape parameter_param.shape (zero-filled); dW += dy"""

    exact_num_bottom = 0
    exact_num_top = 1

    def setup(self, bottom, top):
        shape = tuple(int(d) for d in self.param.parameter_param.shape.dim)
        try:
            self.new_param(shape)
        except CaffeliteError as error:
            raise NetError(f"{self.describe()}: bad parameter_param shape: {error}") from None

    def reshape(self, bottom, top):
        top[0].reshape(self.params[0].shape)

    def forward(self, bottom, top):
        # Caffe hands out the blob itself; a copy gives the same values, and backward adds the grad back.
        top[0].data[...] = self.params[0].data

    def backward(self, top, propagate_down, bottom):
        self.params[0].grad += top[0].grad
