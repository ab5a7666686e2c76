"""RMSProp (Tieleman and Hinton 2012), as Caffe computes it.

H = rms_decay * H + (1 - rms_decay) * grad²;  step = rate * grad / (sqrt(H) + delta).
"""

import numpy as np

from caffelite.errors import SolverError
from caffelite.solvers.solver import SOLVERS, Solver


@SOLVERS.register("RMSProp")
class RMSPropSolver(Solver):
    def check_param(self):
        p = self.param
        if p.momentum != 0:
            raise SolverError(
                f"{self.source}: momentum cannot be used with RMSProp (got momentum: {p.momentum:g}; "
                "remove it or set it to 0)"
            )
        if not 0 <= p.rms_decay < 1:
            raise SolverError(f"{self.source}: rms_decay must lie in [0, 1) for RMSProp, got {p.rms_decay:g}")

    def compute_update_value(self, index, tensor, rate):
        decay = self.param.rms_decay
        mean_square = self.history[index]
        mean_square *= decay
        mean_square += (1 - decay) * np.square(tensor.grad)
        tensor.grad[...] = rate * (tensor.grad / (np.sqrt(mean_square) + self.param.delta))
