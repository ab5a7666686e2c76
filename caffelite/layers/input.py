"""The net's inputs: tops the user fills (pycaffe `net.blobs['data'].data[...] = ...`)."""

from caffelite.errors import NetError
from caffelite.function import Function, register_layer


@register_layer("Input")
class Input(Function):
    """tops = whatever the user writes into them; input_param gives one shape for all tops or one per top"""

    exact_num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        shapes = self.param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise NetError(
                f"{self.describe()}: give 'shape' once, once per top, or not at all: "
                f"{len(top)} tops, {len(shapes)} shapes"
            )
        for index, tensor in enumerate(top):
            if shapes:
                tensor.reshape(tuple(shapes[0 if len(shapes) == 1 else index].dim))

    def reshape(self, bottom, top):
        """Nothing: the tops keep whatever shape the user last gave them."""

    def forward(self, bottom, top):
        """Nothing: the user has already written the data."""
