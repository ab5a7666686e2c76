"""Binomial normal log-likelihood (softplus)."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._logistic import sigmoid
from caffelite.layers._saved_input import SavedInputNeuron


@register_layer("BNLL")
class BNLL(SavedInputNeuron):
    """y = log(1 + exp(x)); dy/dx = sigmoid(x)"""

    def value(self, x):
        # Caffe's overflow-free form: max(x, 0) + log(1 + exp(-|x|)).
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def slope(self, x, y):
        return sigmoid(x)
