"""Each lr_policy against its formula, written out independently."""

import math

import pytest

from caffelite.errors import SolverError
from caffelite.proto import caffe_pb2
from caffelite.solvers.lr_policies import learning_rate


def solver_param(**fields):
    stepvalue = fields.pop("stepvalue", [])
    param = caffe_pb2.SolverParameter(base_lr=0.1, gamma=0.5, power=0.75, stepsize=10, max_iter=100, **fields)
    param.stepvalue.extend(stepvalue)
    return param


@pytest.mark.parametrize(
    "policy, it, expected",
    [
        ("fixed", 37, 0.1),
        ("step", 25, 0.1 * 0.5**2),
        ("exp", 3, 0.1 * 0.5**3),
        ("inv", 40, 0.1 * (1 + 0.5 * 40) ** -0.75),
        ("poly", 40, 0.1 * (1 - 40 / 100) ** 0.75),
        ("sigmoid", 12, 0.1 / (1 + math.exp(-0.5 * (12 - 10)))),
    ],
)
def test_policy_formulas(policy, it, expected):
    rate, _ = learning_rate(solver_param(lr_policy=policy), it, 0)
    assert rate == pytest.approx(expected, rel=1e-6)  # the fields are float32


def test_multistep_advances_one_step_per_call_once_past_each_value():
    param = solver_param(lr_policy="multistep", stepvalue=[5, 8])
    step, rates = 0, []
    for it in range(12):
        rate, step = learning_rate(param, it, step)
        rates.append(rate)
    assert rates == pytest.approx([0.1] * 5 + [0.05] * 3 + [0.025] * 4)
    assert step == 2


def test_step_records_current_step():
    _, step = learning_rate(solver_param(lr_policy="step"), 35, 0)
    assert step == 3


def test_unknown_policy_lists_the_known_ones():
    with pytest.raises(SolverError, match="unknown lr_policy 'cosine'.*multistep"):
        learning_rate(solver_param(lr_policy="cosine"), 0, 0)
