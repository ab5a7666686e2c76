"""RAdamSolver: rectified Adam (Liu et al. 2019, Algorithm 2) with Caffe's δ and bias-correction folding."""

import math

import numpy as np
import pytest

import caffelite
from caffelite.errors import SolverError
from solvers.solver_harness import check_against_formula, make_solver, solver_param


def test_radam_follows_the_papers_algorithm():
    beta1, beta2, delta = 0.9, 0.9, 1e-3
    rho_inf = 2 / (1 - beta2) - 1  # 19
    rectified = []

    def rule(w, g, lr, decay, t, h):
        g = g + decay * w  # RAdam keeps Caffe's coupled weight decay
        h["m"] = beta1 * h.get("m", 0) + (1 - beta1) * g
        h["v"] = beta2 * h.get("v", 0) + (1 - beta2) * g * g
        m_hat = h["m"] / (1 - beta1**t)
        rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        if rho_t <= 4:
            rectified.append(False)
            return w - lr * m_hat
        rectified.append(True)
        r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        # sqrt((1 - β2^t) / v) with δ on the uncorrected sqrt(v), as Caffe's Adam
        adaptive = math.sqrt(1 - beta2**t) / (np.sqrt(h["v"]) + delta)
        return w - lr * r * m_hat * adaptive

    solver = make_solver("RAdam", f"momentum: {beta1} momentum2: {beta2} delta: {delta}")
    assert isinstance(solver, caffelite.RAdamSolver) and len(solver.history) == 4
    check_against_formula(solver, rule, steps=7, layout=("m", "v"))
    assert rectified[::2] == [False] * 4 + [True] * 3  # ρt: 1, 1.95, 2.86, 3.74, 4.58, …


def test_radam_starts_as_bias_corrected_momentum_sgd():
    solver = make_solver("RAdam", "momentum: 0.9 weight_decay: 0")  # β2 = 0.999: ρ1 = 1
    before = solver.net.learnable_params[0].data.copy()
    solver.net.clear_param_diffs()
    solver.net.forward_backward()
    grad = solver.net.learnable_params[0].grad.copy()
    solver.step(1)
    np.testing.assert_allclose(solver.net.learnable_params[0].data, before - 0.1 * grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("extra", ["momentum: 1", "momentum2: 1", "momentum2: -0.5"])
def test_radam_needs_betas_in_0_1(extra):
    with pytest.raises(SolverError, match=r"RAdam needs momentum2? in \[0, 1\)"):
        caffelite.RAdamSolver(solver_param("RAdam", extra))
