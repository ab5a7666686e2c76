"""Registered layer types called on Tensors: `layer("Convolution", num_output=20, kernel_size=5)(x)`."""

import weakref

import numpy as np

from caffelite.autograd.tape import Tensor, apply, as_tensor
from caffelite.errors import CaffeliteError
from caffelite.function import LAYERS
from caffelite.net_spec import layer_parameter
from caffelite.phase import TRAIN


class Layer:
    """A registered layer type called on Tensors; `params` are its learnable Tensors (leaves) once it has run.

    Options are pycaffe's NetSpec keywords (`kernel_size=5` lands in convolution_param, `param=[dict(lr_mult=1)]`
    in LayerParameter). The Function is set up on the first call, when the input shapes are known. A Function
    keeps what its backward needs from its last forward, so a call made while an earlier call still awaits its
    backward runs on another instance of the Function (set up the same way, sharing the params).
    """

    def __init__(self, type_name, phase=TRAIN, dtype=np.float32, **options):
        self.param = layer_parameter(type_name, **options)
        if self.param.loss_weight:
            raise CaffeliteError(f"layer {type_name}: loss_weight has no effect on a called layer; multiply its "
                                 "output instead (0.5 * loss)")
        self.dtype = np.dtype(dtype)
        function_class = LAYERS.get(type_name)
        # Another instance draws its own filler values, then takes the first instance's params instead.
        self._make = lambda: function_class(self.param, phase=phase, dtype=dtype)
        self._instances = []  # [Function, weak reference to its last recorded node or None]

    @property
    def params(self):
        return self._instances[0][0].params if self._instances else []

    def __call__(self, *inputs):
        bottoms = [as_tensor(value, self.dtype) for value in inputs]
        instance = self._free_instance(bottoms)
        outputs = apply(instance[0], *bottoms, top_count=len(self.param.top))
        tops = outputs if isinstance(outputs, tuple) else (outputs,)
        instance[1] = weakref.ref(tops[0]._node) if tops and tops[0]._node is not None else None
        return outputs

    def _free_instance(self, bottoms):
        for instance in self._instances:
            node = instance[1]() if instance[1] is not None else None
            if node is None or node.released:
                return instance
        function = self._make()
        tops = [Tensor() for _ in self.param.top]
        function.check_blob_counts(len(bottoms), len(tops))
        function.setup(bottoms, tops)
        if self._instances:
            function.params[:] = self.params
        else:
            self._make_leaves(function)
        self._instances.append([function, None])
        return self._instances[-1]

    def _make_leaves(self, function):
        """The params become autograd leaves over the Function's arrays, with their ParamSpec multipliers."""
        specs = self.param.param
        function.params[:] = [Tensor.sharing(p, True) for p in function.params]
        for index, leaf in enumerate(function.params[:len(specs)]):
            leaf.lr_mult, leaf.decay_mult = specs[index].lr_mult, specs[index].decay_mult


def layer(type_name, phase=TRAIN, dtype=np.float32, **options):
    """`layer("Convolution", num_output=20, kernel_size=5)`: a Layer of that registered type (TRAIN phase)."""
    return Layer(type_name, phase=phase, dtype=dtype, **options)


def parameters(*layers):
    """Every learnable Tensor of `layers`, in order."""
    return [p for item in layers for p in item.params]
