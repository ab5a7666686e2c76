"""caffelite: Caffe's model format and workflow in Python, under pycaffe's names (`import caffelite as caffe`)."""

import os

# numpy's OpenBLAS keeps each worker thread spinning for 2^28 clock ticks (about 0.1 s here) after a matrix product
# before it sleeps. A net runs memory-bound passes between its products, on threads of their own (see
# layers/_threads.py), and those then share the cores with a spinning thread: CIFAR-10 quick's first max pool took
# 37.6 ms right after a product against 21.5 ms without one. After 2^16 ticks (tens of microseconds) the workers
# sleep instead, which still bridges products issued back to back. OpenBLAS reads this when numpy loads it; when
# numpy came first, device.apply_openblas_thread_timeout (below) has it read the value again. A user's value wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")

from caffelite import device  # imports numpy: OpenBLAS reads the variable now, unless numpy came first

device.apply_openblas_thread_timeout()

from caffelite import coord_map, io
from caffelite.classifier import Classifier
from caffelite.detector import Detector
from caffelite.device import set_device, set_mode_cpu, set_mode_gpu
from caffelite.errors import CaffeliteError
from caffelite.function import Function, layer_type_list, register_layer
from caffelite.layers.python import Layer, allow_python_layers, python_layers_allowed
from caffelite.net import Net
# pycaffe's NetSpec names: `from caffelite import layers as L, params as P` (the layers package doubles as the
# NetSpec layer factory, see caffelite/layers/__init__.py).
from caffelite import layers, net_spec
from caffelite.net_spec import NetSpec, params, to_proto
from caffelite import autograd
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
    "Classifier",
    "Detector",
    "Function",
    "Layer",
    "Net",
    "NetSpec",
    "NesterovSolver",
    "RAdamSolver",
    "RMSPropSolver",
    "SGDSolver",
    "Solver",
    "Tensor",
    "allow_python_layers",
    "autograd",
    "coord_map",
    "get_solver",
    "io",
    "layer_type_list",
    "layers",
    "net_spec",
    "params",
    "python_layers_allowed",
    "register_layer",
    "set_device",
    "set_mode_cpu",
    "set_mode_gpu",
    "set_random_seed",
    "to_proto",
]
