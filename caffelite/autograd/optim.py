"""Optimizers over autograd leaves."""

import numpy as np


class SGD:
    """Caffe's SGD with momentum and L2 weight decay (solvers/sgd.py's rule plus Solver's regularization):
    v = momentum v + lr lr_mult (grad + weight_decay decay_mult w); w -= v.

    Each param's `lr_mult` and `decay_mult` (its layer's ParamSpec) scale the rate and the decay as in a Net.
    The Solver's own update methods work on a Net's param lists, so this restates the three-line rule.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        self.params, self.lr, self.momentum, self.weight_decay = list(params), lr, momentum, weight_decay
        self.history = [np.zeros_like(p.data) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def step(self):
        for p, v in zip(self.params, self.history):
            v *= self.momentum
            v += self.lr * p.lr_mult * (p.grad + self.weight_decay * p.decay_mult * p.data)
            p.data -= v
