"""caffelite: Caffe's model format and workflow in Python, under pycaffe's names (`import caffelite as caffe`)."""

from caffelite.errors import CaffeliteError
from caffelite.function import Function, layer_type_list, register_layer
from caffelite.net import Net
from caffelite.phase import TEST, TRAIN
from caffelite.rng import set_random_seed
from caffelite.solvers import SGDSolver, Solver, get_solver
from caffelite.tensor import Tensor

__all__ = [
    "TEST",
    "TRAIN",
    "CaffeliteError",
    "Function",
    "Net",
    "SGDSolver",
    "Solver",
    "Tensor",
    "get_solver",
    "layer_type_list",
    "register_layer",
    "set_random_seed",
]
