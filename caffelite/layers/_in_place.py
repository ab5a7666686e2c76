"""The check for layers whose tops cannot share a Tensor with their bottoms."""

from caffelite.errors import NetError


def refuse_in_place(layer, bottom, top):
    """Raise if any top is also a bottom: the top's reshape or first write would destroy the input."""
    if any(t is b for t in top for b in bottom):
        raise NetError(f"{layer.describe()}: cannot run in place")
