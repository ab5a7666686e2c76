"""AdaGradSolver: H += g²; step lr·g / (√H + δ); momentum refused, as Caffe does."""

import numpy as np
import pytest

import caffelite
from caffelite.errors import SolverError
from solvers.solver_harness import NET, check_against_formula, make_solver


def test_adagrad_follows_caffes_formula():
    delta = 0.05  # large enough that adding it outside the square root (not inside) is visible

    def rule(w, g, lr, decay, t, h):
        g = g + decay * w
        h["H"] = h.get("H", 0) + g * g
        return w - lr * g / (np.sqrt(h["H"]) + delta)

    solver = make_solver("AdaGrad", f"delta: {delta}")
    assert isinstance(solver, caffelite.AdaGradSolver) and len(solver.history) == 2
    check_against_formula(solver, rule, steps=5, layout=("H",))


def test_adagrad_refuses_momentum_naming_the_solver_file(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    path = tmp_path / "adagrad_solver.prototxt"
    path.write_text(f'net: "{tmp_path}/net.prototxt" type: "AdaGrad" base_lr: 0.01 momentum: 0.9')
    with pytest.raises(SolverError, match=r"adagrad_solver\.prototxt: momentum cannot be used with AdaGrad"):
        caffelite.get_solver(str(path))
