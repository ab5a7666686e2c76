"""The one random generator behind fillers, dropout and data shuffling; `set_random_seed` makes runs repeatable."""

import numpy as np

_state = {"generator": np.random.default_rng()}


def set_random_seed(seed):
    """Reseed caffelite's generator (Caffe's `random_seed`; a negative seed means: seed from the OS)."""
    _state["generator"] = np.random.default_rng(None if seed is None or seed < 0 else seed)


def rng():
    """The current generator (fetch it at each use: `set_random_seed` replaces it)."""
    return _state["generator"]
