"""RMSPropSolver: H = ρH + (1−ρ)g² (ρ = rms_decay); step lr·g / (√H + δ); Caffe's constructor checks."""

import numpy as np
import pytest

import caffelite
from caffelite.errors import SolverError
from solvers.solver_harness import NET, check_against_formula, make_solver, solver_param


def test_rmsprop_follows_caffes_formula():
    rho, delta = 0.8, 0.01

    def rule(w, g, lr, decay, t, h):
        g = g + decay * w
        h["H"] = rho * h.get("H", 0) + (1 - rho) * g * g
        return w - lr * g / (np.sqrt(h["H"]) + delta)

    solver = make_solver("RMSProp", f"rms_decay: {rho} delta: {delta}")
    assert isinstance(solver, caffelite.RMSPropSolver) and len(solver.history) == 2
    check_against_formula(solver, rule, steps=5, layout=("H",))


def test_rmsprop_default_decay_is_0_99():
    def rule(w, g, lr, decay, t, h):
        g = g + decay * w
        h["H"] = 0.99 * h.get("H", 0) + 0.01 * g * g
        return w - lr * g / (np.sqrt(h["H"]) + 1e-8)

    check_against_formula(make_solver("RMSProp"), rule, steps=2)


def test_rmsprop_refuses_momentum_naming_the_solver_file(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    path = tmp_path / "rms_solver.prototxt"
    path.write_text(f'net: "{tmp_path}/net.prototxt" type: "RMSProp" base_lr: 0.01 momentum: 0.5')
    with pytest.raises(SolverError, match=r"rms_solver\.prototxt: momentum cannot be used with RMSProp"):
        caffelite.get_solver(str(path))


@pytest.mark.parametrize("rms_decay", [1.0, -0.1, 1.5])
def test_rmsprop_needs_a_decay_in_0_1(rms_decay):
    with pytest.raises(SolverError, match=r"rms_decay must lie in \[0, 1\)"):
        caffelite.RMSPropSolver(solver_param("RMSProp", f"rms_decay: {rms_decay}"))
