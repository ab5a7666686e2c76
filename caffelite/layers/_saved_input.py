"""Element-wise layers whose derivative needs the input x: correct in place by saving x before it is overwritten."""

from caffelite.layers._neuron import Neuron


class SavedInputNeuron(Neuron):
    """A Neuron y = value(x) with dy/dx = slope(x, y); in place, forward keeps a copy of x for backward.

    Subclasses define `value(x)` and `slope(x, y)`; layers with more to do (PReLU) call `keep_input` /
    `saved_input` themselves.
    """

    _saved = None

    def keep_input(self, bottom, top):
        """The input of this forward pass, copied first when top and bottom share one Tensor."""
        self._saved = bottom[0].data.copy() if top[0] is bottom[0] else None
        return bottom[0].data if self._saved is None else self._saved

    def saved_input(self, bottom, top):
        """The input the last forward saw (bottom data is the output once a layer has run in place)."""
        if top[0] is bottom[0] and self._saved is not None:
            return self._saved
        return bottom[0].data

    def forward(self, bottom, top):
        top[0].data[...] = self.value(self.keep_input(bottom, top))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = self.saved_input(bottom, top)
            bottom[0].grad[...] = top[0].grad * self.slope(x, top[0].data)

    def value(self, x):
        raise NotImplementedError(f"{type(self).__name__}.value")

    def slope(self, x, y):
        raise NotImplementedError(f"{type(self).__name__}.slope")
