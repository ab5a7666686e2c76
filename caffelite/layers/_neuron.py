"""The base of element-wise layers: one bottom, one top of the same shape, in place allowed."""

from caffelite.function import Function


class Neuron(Function):
    """Caffe's NeuronLayer: exactly one bottom and one top, the top shaped like the bottom."""

    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)
