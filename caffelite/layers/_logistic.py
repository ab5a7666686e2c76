"""The logistic sigmoid, accurate in relative terms in both tails (Swish and BNLL use it)."""

import numpy as np


def sigmoid(z):
    """1 / (1 + exp(-z)) elementwise, computed from exp(-|z|) so it neither overflows nor cancels."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)
