"""Python: a layer whose code is a user's Python class (pycaffe's caffe.Layer), refused unless explicitly allowed.

A model file is data; a Python layer makes it import and run code named in it. So building one fails until the
user opts in, with `caffelite.allow_python_layers()` or the command-line flag `--allow_python_layers`.
"""

import importlib

import numpy as np

from caffelite.errors import CaffeliteError, NetError
from caffelite.function import Function, register_layer
from caffelite.phase import TEST
from caffelite.tensor import Tensor

_switch = {"allowed": False}


def allow_python_layers(allowed=True):
    """Let nets build Python layers (which import and run the modules their prototxt names); False forbids again."""
    _switch["allowed"] = bool(allowed)


def python_layers_allowed():
    return _switch["allowed"]


class BlobVec(list):
    """pycaffe's `self.blobs` of a Python layer: its learnable Tensors, grown with `add_blob(*shape)`."""

    def __init__(self, dtype=np.float32):
        super().__init__()
        self.dtype = np.dtype(dtype)

    def add_blob(self, *shape):
        self.append(Tensor(shape, dtype=self.dtype))


class Layer:
    """Base class of user layers (pycaffe's caffe.Layer): override setup, reshape, forward and backward.

    Before `setup` runs, the layer gets `param_str` (python_param.param_str) and `phase` (caffelite.TRAIN or
    TEST). Learnable parameters go in `self.blobs` (`self.blobs.add_blob(*shape)` in setup); they are saved with
    the net's weights and updated by the solver like any layer's.
    """

    type = "Python"

    def __init__(self, param=None):
        self.param = param
        self.param_str = ""
        self.phase = TEST
        self.blobs = BlobVec()

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


@register_layer("Python")
class Python(Function):
    """Delegates setup, reshape, forward and backward to an instance of python_param.module.python_param.layer."""

    def setup(self, bottom, top):
        python_param = self.param.python_param
        if not python_layers_allowed():
            raise NetError(
                f"{self.describe()}: Python layers are not allowed: this layer would import and run the module "
                f"'{python_param.module}' named in the model. If you trust this model, allow Python layers with "
                "`caffelite.allow_python_layers()` in Python, or the command-line flag `--allow_python_layers`"
            )
        layer_class = self._user_class(python_param)
        self.user = self._call(layer_class, "construct", self.param)
        blobs = getattr(self.user, "blobs", None)
        if not isinstance(blobs, BlobVec):
            blobs = self.user.blobs = BlobVec(self.dtype)
        blobs.dtype = self.dtype
        self.params = blobs  # the net collects the blobs added in setup as this layer's params
        self.user.param_str = python_param.param_str
        self.user.phase = self.phase
        self._call(self.user.setup, "setup", bottom, top)

    def reshape(self, bottom, top):
        self._call(self.user.reshape, "reshape", bottom, top)

    def forward(self, bottom, top):
        self._call(self.user.forward, "forward", bottom, top)

    def backward(self, top, propagate_down, bottom):
        self._call(self.user.backward, "backward", top, propagate_down, bottom)

    def __getattr__(self, name):
        # pycaffe hands back the user's own object as net.layers[i] (scripts call its methods, e.g. a data
        # layer's set_roidb); attributes this wrapper lacks are looked up there.
        user = self.__dict__.get("user")
        if user is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(user, name)

    def _user_class(self, python_param):
        if not python_param.module or not python_param.layer:
            raise NetError(f"{self.describe()}: python_param needs both 'module' and 'layer'")
        try:
            module = importlib.import_module(python_param.module)
        except ImportError as error:
            raise NetError(
                f"{self.describe()}: cannot import module '{python_param.module}' ({error}); it must be importable "
                "from sys.path (the current directory or PYTHONPATH)"
            ) from error
        except Exception as error:
            raise NetError(
                f"{self.describe()}: importing module '{python_param.module}' raised "
                f"{type(error).__name__}: {error}"
            ) from error
        layer_class = getattr(module, python_param.layer, None)
        if layer_class is None:
            raise NetError(f"{self.describe()}: module '{python_param.module}' has no '{python_param.layer}'")
        if not (isinstance(layer_class, type) and issubclass(layer_class, Layer)):
            raise NetError(
                f"{self.describe()}: {python_param.module}.{python_param.layer} must be a class derived from "
                "caffelite.Layer"
            )
        return layer_class

    def _call(self, method, step, *args):
        """Run one of the user's methods; its errors come out naming this layer (the original is chained)."""
        try:
            return method(*args)
        except CaffeliteError as error:
            if self.describe() in str(error):
                raise
            raise type(error)(f"{self.describe()}: {step}: {error}") from error
        except Exception as error:
            message = f"{self.describe()}: {self._user_name()}.{step} raised {type(error).__name__}: {error}"
            raise _layer_error(type(error), message) from error

    def _user_name(self):
        python_param = self.param.python_param
        return f"{python_param.module}.{python_param.layer}"


_error_classes = {}


def _layer_error(user_type, message):
    """A NetError that is also a `user_type`, so `except RuntimeError` still catches what the user's layer raised
    (as in pycaffe, where a Python layer's exception reaches the caller unchanged). Plain NetError for exception
    types that cannot be combined or built from a message alone."""
    try:
        if user_type not in _error_classes:
            _error_classes[user_type] = type(
                f"PythonLayer{user_type.__name__}", (NetError, user_type), {"__str__": _message_str}
            )
        return _error_classes[user_type](message)
    except TypeError:
        return NetError(message)


def _message_str(error):
    return str(error.args[0]) if len(error.args) == 1 else Exception.__str__(error)
