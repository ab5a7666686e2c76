"""Adam (Kingma and Ba 2015), as Caffe computes it: β1 = momentum, β2 = momentum2, ε = delta, t = iter + 1.

    m = β1 m + (1 - β1) grad            (history block 0: every param's m, then …)
    v = β2 v + (1 - β2) grad²           (… block 1: every param's v — SolverState's order)
    step = rate * sqrt(1 - β2^t) / (1 - β1^t) * m / (sqrt(v) + delta)
The bias corrections are folded into the rate, so delta is added to the uncorrected sqrt(v) (the paper's ε̂).
"""

import math

import numpy as np

from caffelite.solvers.solver import SOLVERS, Solver


@SOLVERS.register("Adam")
class AdamSolver(Solver):
    history_count = 2

    def update_moments(self, index, grad):
        """Advance m and v of param `index` with `grad`; returns (m, v)."""
        beta1, beta2 = self.param.momentum, self.param.momentum2
        m, v = self.history_block(0, index), self.history_block(1, index)
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * np.square(grad)
        return m, v

    def adam_step(self, index, tensor, rate):
        """rate * bias correction * m / (sqrt(v) + delta), with m and v advanced by tensor.grad."""
        t = self.iter + 1
        correction = math.sqrt(1 - self.param.momentum2**t) / (1 - self.param.momentum**t)
        m, v = self.update_moments(index, tensor.grad)
        return (rate * correction) * (m / (np.sqrt(v) + self.param.delta))

    def compute_update_value(self, index, tensor, rate):
        tensor.grad[...] = self.adam_step(index, tensor, rate)
