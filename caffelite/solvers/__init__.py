"""Solvers: the training loop (solver.py), lr policies, and one module per update rule."""

from caffelite.solvers.sgd import SGDSolver
from caffelite.solvers.solver import SOLVERS, Solver, get_solver

__all__ = ["SOLVERS", "SGDSolver", "Solver", "get_solver"]
