"""Learning-rate policies (SolverParameter.lr_policy), each a function of the solver's state."""

import math

from caffelite.errors import SolverError
from caffelite.registry import Registry

LR_POLICIES = Registry("lr_policy")


@LR_POLICIES.register("fixed")
def fixed(p, it, step):
    return p.base_lr, step


@LR_POLICIES.register("step")
def step_policy(p, it, step):
    if p.stepsize <= 0:
        raise SolverError("lr_policy 'step' needs stepsize > 0")
    step = it // p.stepsize
    return p.base_lr * p.gamma**step, step


@LR_POLICIES.register("exp")
def exp(p, it, step):
    return p.base_lr * p.gamma**it, step


@LR_POLICIES.register("inv")
def inv(p, it, step):
    return p.base_lr * (1.0 + p.gamma * it) ** (-p.power), step


@LR_POLICIES.register("multistep")
def multistep(p, it, step):
    # One step per call at most, as Caffe does: the solver asks once per iteration.
    if step < len(p.stepvalue) and it >= p.stepvalue[step]:
        step += 1
    return p.base_lr * p.gamma**step, step


@LR_POLICIES.register("poly")
def poly(p, it, step):
    return p.base_lr * (1.0 - it / p.max_iter) ** p.power, step


@LR_POLICIES.register("sigmoid")
def sigmoid(p, it, step):
    return p.base_lr / (1.0 + math.exp(-p.gamma * (it - p.stepsize))), step


def learning_rate(param, it, current_step):
    """(rate, new current_step) for iteration `it` under `param.lr_policy`."""
    try:
        policy = LR_POLICIES.get(param.lr_policy)
    except KeyError as error:
        raise SolverError(str(error)) from None
    return policy(param, it, current_step)
