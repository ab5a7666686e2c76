"""AdaDeltaSolver: Caffe's AdaDelta with ρ = momentum, δ inside both square roots, the step scaled by lr·lr_mult."""

import numpy as np

import caffelite
from solvers.solver_harness import check_against_formula, make_solver


def test_adadelta_follows_caffes_formula():
    rho, delta = 0.95, 1e-4

    def rule(w, g, lr, decay, t, h):
        g = g + decay * w
        h["g2"] = rho * h.get("g2", 0) + (1 - rho) * g * g
        dx = g * np.sqrt((h.get("dx2", 0) + delta) / (h["g2"] + delta))
        h["dx2"] = rho * h.get("dx2", 0) + (1 - rho) * dx * dx  # the history takes the step before lr
        return w - lr * dx

    # base_lr 0.5 and lr_mult 2 on the bias: Caffe multiplies AdaDelta's step by the local rate.
    solver = make_solver("AdaDelta", f"base_lr: 0.5 momentum: {rho} delta: {delta}")
    assert isinstance(solver, caffelite.AdaDeltaSolver)
    check_against_formula(solver, rule, steps=5, layout=("g2", "dx2"))


def test_adadelta_keeps_two_history_blocks_in_caffes_order(tmp_path):
    solver = make_solver("AdaDelta", f'momentum: 0.9 snapshot: 2 snapshot_prefix: "{tmp_path}/ad"')
    solver.step(2)
    count = len(solver.net.learnable_params)
    assert len(solver.history) == 2 * count
    state = caffelite.io.read_solverstate(str(tmp_path / "ad_iter_2.solverstate"))
    assert len(state.history) == 2 * count
    for index in range(count):  # squared gradients of every param first, then squared updates
        for block in range(2):
            saved = caffelite.io.blobproto_to_array(state.history[block * count + index])
            np.testing.assert_array_equal(saved, solver.history_block(block, index))
    assert not np.array_equal(solver.history_block(0, 0), solver.history_block(1, 0))
