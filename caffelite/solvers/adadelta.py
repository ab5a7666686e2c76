"""AdaDelta (Zeiler 2012), as Caffe computes it: `momentum` is the decay ρ, and the step is scaled by the rate.

With Hg (history block 0) and HΔ (block 1):
    Hg = ρ Hg + (1 - ρ) grad²
    Δ  = grad * sqrt((HΔ + delta) / (Hg + delta))
    HΔ = ρ HΔ + (1 - ρ) Δ²          (the unscaled Δ: the rate does not enter the history)
    step = rate * Δ
The paper has no learning rate (Caffe's examples use base_lr: 1.0); Caffe still multiplies by it, lr_mult too.
"""

import numpy as np

from caffelite.solvers.solver import SOLVERS, Solver


@SOLVERS.register("AdaDelta")
class AdaDeltaSolver(Solver):
    history_count = 2  # squared gradients, then squared updates (Caffe's order, kept in SolverState)

    def compute_update_value(self, index, tensor, rate):
        rho, delta = self.param.momentum, self.param.delta
        grad_squares = self.history_block(0, index)
        update_squares = self.history_block(1, index)
        grad_squares *= rho
        grad_squares += (1 - rho) * np.square(tensor.grad)
        change = tensor.grad * np.sqrt((update_squares + delta) / (grad_squares + delta))
        update_squares *= rho
        update_squares += (1 - rho) * np.square(change)
        tensor.grad[...] = rate * change
