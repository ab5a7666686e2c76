"""The `base` option Exp and Log share: -1 means e, anything else must be a positive finite number."""

import math

from caffelite.errors import NetError


def log_of_base(layer, base):
    """ln(base), with base -1 meaning e."""
    if base == -1:
        return 1.0
    if not base > 0 or math.isinf(base):
        raise NetError(f"{layer.describe()}: base must be strictly positive and finite (or -1 for e), got {base}")
    return math.log(base)
