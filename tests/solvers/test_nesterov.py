"""NesterovSolver: Caffe's Nesterov step (1 + μ) V' − μ V, with V' = μ V + lr·g."""

import numpy as np

import caffelite
from solvers.solver_harness import check_against_formula, check_same_training, make_solver


def test_nesterov_follows_caffes_formula():
    mu = 0.9

    def rule(w, g, lr, decay, t, h):
        g = g + decay * w  # Caffe's L2 regularization, before the update rule
        previous = h.get("v", np.zeros_like(w))
        h["v"] = mu * previous + lr * g
        return w - ((1 + mu) * h["v"] - mu * previous)

    solver = make_solver("Nesterov", f"momentum: {mu}")
    assert isinstance(solver, caffelite.NesterovSolver) and len(solver.history) == 2
    check_against_formula(solver, rule, steps=4, layout=("v",))


def test_nesterov_without_momentum_is_plain_sgd():
    check_same_training(make_solver("Nesterov", "momentum: 0"), make_solver("SGD", "momentum: 0"))
