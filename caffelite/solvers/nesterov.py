"""Nesterov's accelerated gradient, as Caffe computes it.

V' = momentum * V + rate * grad;  step = (1 + momentum) * V' - momentum * V  (V is the history).
"""

from caffelite.solvers.solver import SOLVERS, Solver


@SOLVERS.register("Nesterov")
class NesterovSolver(Solver):
    def compute_update_value(self, index, tensor, rate):
        momentum = self.param.momentum
        velocity = self.history[index]
        previous = velocity.copy()  # the step looks back at V as it was before this iteration
        velocity *= momentum
        velocity += rate * tensor.grad
        tensor.grad[...] = (1 + momentum) * velocity - momentum * previous
