"""Consume blobs nobody else needs, so they are not reported as net outputs."""

from caffelite.function import Function, register_layer


@register_layer("Silence")
class Silence(Function):
    """no output; dx_i = 0"""

    min_bottom = 1
    exact_num_top = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for b, wanted in zip(bottom, propagate_down):
            if wanted:
                b.grad[...] = 0
