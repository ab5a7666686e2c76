"""RAdam: rectified Adam (Liu et al. 2019, "On the Variance of the Adaptive Learning Rate and Beyond", Alg. 2)
— a caffelite addition. β1 = momentum, β2 = momentum2, t = iter + 1, m and v as in Adam (two history blocks).

    ρ∞ = 2 / (1 - β2) - 1,   ρt = ρ∞ - 2 t β2^t / (1 - β2^t)
    if ρt > 4 (the variance of the adaptive rate is tractable):
        r = sqrt((ρt - 4)(ρt - 2) ρ∞ / ((ρ∞ - 4)(ρ∞ - 2) ρt))
        step = rate * r * sqrt(1 - β2^t) / (1 - β1^t) * m / (sqrt(v) + delta)
    else (the first few iterations, or always when ρ∞ <= 4): momentum SGD with a bias-corrected m
        step = rate * m / (1 - β1^t)
The paper's adaptive term sqrt((1 - β2^t) / v) has no ε; delta enters as in Caffe's Adam (added to the
uncorrected sqrt(v), the correction folded into the rate), as the authors' own code does. The paper's
algorithm has no weight decay; weight_decay is Caffe's usual regularization, added to the gradient before the
moments (use AdamW for decoupled decay).
"""

import math

from caffelite.errors import SolverError
from caffelite.solvers.adam import AdamSolver
from caffelite.solvers.solver import SOLVERS


@SOLVERS.register("RAdam")
class RAdamSolver(AdamSolver):
    def check_param(self):
        for name in ("momentum", "momentum2"):
            value = getattr(self.param, name)
            if not 0 <= value < 1:
                raise SolverError(f"{self.source}: RAdam needs {name} in [0, 1), got {value:g}")

    def compute_update_value(self, index, tensor, rate):
        beta1, beta2 = self.param.momentum, self.param.momentum2
        t = self.iter + 1
        rho_inf = 2 / (1 - beta2) - 1
        beta2_t = beta2**t
        rho_t = rho_inf - 2 * t * beta2_t / (1 - beta2_t)
        if rho_t > 4:
            rectifier = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            tensor.grad[...] = self.adam_step(index, tensor, rate * rectifier)
        else:
            m, _ = self.update_moments(index, tensor.grad)
            tensor.grad[...] = (rate / (1 - beta1**t)) * m
