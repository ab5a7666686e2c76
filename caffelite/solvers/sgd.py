"""SGD with momentum: V = momentum * V + rate * grad; the step is V."""

from caffelite.solvers.solver import SOLVERS, Solver


@SOLVERS.register("SGD")
class SGDSolver(Solver):
    def compute_update_value(self, index, tensor, rate):
        history = self.history[index]
        history *= self.param.momentum
        history += rate * tensor.grad
        tensor.grad[...] = history
