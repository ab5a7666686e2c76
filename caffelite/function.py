"""Function: the base class of every layer type, and the layer registry."""

import numpy as np

from caffelite.errors import NetError
from caffelite.phase import TEST
from caffelite.registry import Registry
from caffelite.tensor import Tensor

LAYERS = Registry("layer type")


def register_layer(type_name):
    """Class decorator: `@register_layer("ReLU")` makes `layer { type: "ReLU" }` build this class."""

    def decorate(cls):
        cls.type = type_name
        return LAYERS.register(type_name)(cls)

    return decorate


def layer_type_list():
    """Every registered layer type name, sorted (pycaffe's caffe.layer_type_list())."""
    import caffelite.layers  # noqa: F401  (importing the package registers every layer)

    return LAYERS.names()


class Function:
    """A layer. Caffe's contract: setup once, reshape before every forward, forward, backward.

    Bottom/top counts are declared with the class attributes below (None = no constraint) and checked by
    `check_blob_counts` before setup. A Function assigns its bottom grads and adds into its param grads.
    """

    type = None
    exact_num_bottom = None
    min_bottom = None
    max_bottom = None
    exact_num_top = None
    min_top = None
    max_top = None
    # Loss layers: top[0] gets loss_weight 1 by default and an anonymous top if none is named.
    is_loss = False
    # Whether backward may be called after a forward. A Net sets it from its pruning, so that layers in a
    # forward-only part skip keeping copies of what only their backward would read.
    need_backward = True

    def __init__(self, param, phase=TEST, dtype=np.float32):
        self.param = param
        self.phase = phase
        self.dtype = np.dtype(dtype)
        self.name = param.name
        self.params = []

    # -- the contract ---------------------------------------------------------------------------
    def setup(self, bottom, top):
        """Read options and create learnable params; called once, before the first reshape."""

    def reshape(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__}.reshape")

    def forward(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, top, propagate_down, bottom):
        """Default: nothing flows back (data layers, Accuracy)."""

    @property
    def blobs(self):
        """pycaffe's name for a layer's learnable params (`net.layers[i].blobs[0].data`)."""
        return self.params

    # -- properties the Net consults ------------------------------------------------------------
    def allow_force_backward(self, bottom_index):
        return True

    def new_param(self, shape):
        """A learnable Tensor of this layer's dtype, appended to self.params in Caffe's blob order."""
        tensor = Tensor(shape, dtype=self.dtype)
        self.params.append(tensor)
        return tensor

    def describe(self):
        return f"layer '{self.name}' ({self.type})"

    def check_blob_counts(self, num_bottom, num_top):
        rules = (
            ("bottom", num_bottom, self.exact_num_bottom, self.min_bottom, self.max_bottom),
            ("top", num_top, self.exact_num_top, self.min_top, self.max_top),
        )
        for kind, got, exact, low, high in rules:
            if exact is not None and got != exact:
                raise NetError(f"{self.describe()}: expects {exact} {kind}{'s' * (exact != 1)}, got {got}")
            if low is not None and got < low:
                raise NetError(f"{self.describe()}: expects at least {low} {kind}{'s' * (low != 1)}, got {got}")
            if high is not None and got > high:
                raise NetError(f"{self.describe()}: expects at most {high} {kind}{'s' * (high != 1)}, got {got}")
