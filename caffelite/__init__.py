"""caffelite: Caffe's model format and workflow in Python, under pycaffe's names (`import caffelite as caffe`)."""

from caffelite.errors import CaffeliteError
from caffelite.function import Function, layer_type_list, register_layer
from caffelite.layers.python import Layer, allow_python_layers, python_layers_allowed
from caffelite.net import Net
from caffelite.phase import TEST, TRAIN
from caffelite.rng import set_random_seed
from caffelite.solvers import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    AdamWSolver,
    NesterovSolver,
    RAdamSolver,
    RMSPropSolver,
    SGDSolver,
    Solver,
    get_solver,
)
from caffelite.tensor import Tensor

__all__ = [
    "TEST",
    "TRAIN",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "AdamWSolver",
    "CaffeliteError",
    "Function",
    "Layer",
    "Net",
    "NesterovSolver",
    "RAdamSolver",
    "RMSPropSolver",
    "SGDSolver",
    "Solver",
    "Tensor",
    "allow_python_layers",
    "get_solver",
    "layer_type_list",
    "python_layers_allowed",
    "register_layer",
    "set_random_seed",
]
