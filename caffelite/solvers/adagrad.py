"""AdaGrad (Duchi et al. 2011): H += grad²;  step = rate * grad / (sqrt(H) + delta)."""

import numpy as np

from caffelite.errors import SolverError
from caffelite.solvers.solver import SOLVERS, Solver


@SOLVERS.register("AdaGrad")
class AdaGradSolver(Solver):
    def check_param(self):
        if self.param.momentum != 0:
            raise SolverError(
                f"{self.source}: momentum cannot be used with AdaGrad (got momentum: {self.param.momentum:g}; "
                "remove it or set it to 0)"
            )

    def compute_update_value(self, index, tensor, rate):
        squares = self.history[index]
        squares += np.square(tensor.grad)
        tensor.grad[...] = rate * (tensor.grad / (np.sqrt(squares) + self.param.delta))
