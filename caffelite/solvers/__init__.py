"""Solvers: the training loop (solver.py), lr policies, and one module per update rule."""

from caffelite.solvers.adadelta import AdaDeltaSolver
from caffelite.solvers.adagrad import AdaGradSolver
from caffelite.solvers.adam import AdamSolver
from caffelite.solvers.adamw import AdamWSolver
from caffelite.solvers.nesterov import NesterovSolver
from caffelite.solvers.radam import RAdamSolver
from caffelite.solvers.rmsprop import RMSPropSolver
from caffelite.solvers.sgd import SGDSolver
from caffelite.solvers.solver import SOLVERS, Solver, get_solver

__all__ = [
    "SOLVERS",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "AdamWSolver",
    "NesterovSolver",
    "RAdamSolver",
    "RMSPropSolver",
    "SGDSolver",
    "Solver",
    "get_solver",
]
