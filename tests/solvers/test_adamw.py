"""AdamWSolver: Caffe's Adam step on the raw gradient, plus lr·λ·w (decoupled weight decay)."""

import math

import numpy as np
import pytest

import caffelite
from caffelite.errors import SolverError
from solvers.solver_harness import check_against_formula, check_same_training, make_solver, solver_param


def test_adamw_follows_the_decoupled_formula():
    beta1, beta2, delta = 0.9, 0.99, 1e-3

    def rule(w, g, lr, decay, t, h):
        # No λw in the gradient: the moments see the loss gradient only.
        h["m"] = beta1 * h.get("m", 0) + (1 - beta1) * g
        h["v"] = beta2 * h.get("v", 0) + (1 - beta2) * g * g
        adam = math.sqrt(1 - beta2**t) / (1 - beta1**t) * h["m"] / (np.sqrt(h["v"]) + delta)
        return w - lr * (adam + decay * w)

    solver = make_solver("AdamW", f"momentum: {beta1} momentum2: {beta2} delta: {delta} weight_decay: 0.1")
    assert isinstance(solver, caffelite.AdamWSolver) and len(solver.history) == 4
    check_against_formula(solver, rule, steps=5, layout=("m", "v"))


def test_adamw_without_weight_decay_is_adam():
    check_same_training(make_solver("AdamW", "momentum: 0.9 weight_decay: 0"),
                        make_solver("Adam", "momentum: 0.9 weight_decay: 0"))


def test_adamw_differs_from_adam_with_l2():
    adamw = make_solver("AdamW", "momentum: 0.9 weight_decay: 0.5")
    adam = make_solver("Adam", "momentum: 0.9 weight_decay: 0.5")
    adamw.step(2)
    adam.step(2)
    assert not np.allclose(adamw.net.learnable_params[0].data, adam.net.learnable_params[0].data)


def test_adamw_needs_l2():
    with pytest.raises(SolverError, match='AdamW .* regularization_type: "L2"'):
        caffelite.AdamWSolver(solver_param("AdamW", 'regularization_type: "L1"'))
