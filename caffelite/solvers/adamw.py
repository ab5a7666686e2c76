"""AdamW: Adam with decoupled weight decay (Loshchilov and Hutter 2019) — a caffelite addition.

With λ = weight_decay * decay_mult and rate = lr * lr_mult of the param:
    grad is NOT regularized (no λ w is added to it: the moments see the loss gradient only)
    step = rate * (sqrt(1 - β2^t) / (1 - β1^t) * m / (sqrt(v) + delta) + λ w)
that is Caffe's Adam step (see adam.py: β1 = momentum, β2 = momentum2, t = iter + 1) plus a decay of the weights
scaled by the same rate, as PyTorch's AdamW does: w ← w - rate λ w - rate * adam. A param with lr_mult 0 is
neither updated nor decayed. Only L2 makes sense decoupled, so regularization_type must be L2.
"""

from caffelite.errors import SolverError
from caffelite.solvers.adam import AdamSolver
from caffelite.solvers.solver import SOLVERS


@SOLVERS.register("AdamW")
class AdamWSolver(AdamSolver):
    def check_param(self):
        if self.param.regularization_type != "L2":
            raise SolverError(
                f"{self.source}: AdamW decays weights decoupled from the gradient, which needs "
                f'regularization_type: "L2" (got "{self.param.regularization_type}")'
            )

    def _regularize(self, index, tensor):
        pass  # the decay is applied to the weights in compute_update_value, not added to the gradient

    def compute_update_value(self, index, tensor, rate):
        decay = self.param.weight_decay * self.net.params_weight_decay[index]
        step = self.adam_step(index, tensor, rate)
        if decay:
            step += (rate * decay) * tensor.data
        tensor.grad[...] = step
