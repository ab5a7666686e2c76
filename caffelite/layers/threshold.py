"""Step function at a threshold."""

from caffelite.errors import NetError
from caffelite.function import register_layer
from caffelite.layers._neuron import Neuron


@register_layer("Threshold")
class Threshold(Neuron):
    """y = 1 if x > threshold else 0; not differentiable, so no gradient flows back"""

    def setup(self, bottom, top):
        self.threshold = self.param.threshold_param.threshold

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data > self.threshold

    def backward(self, top, propagate_down, bottom):
        # Caffe aborts here ("Not Implemented"); an error that names the layer is the equivalent.
        if any(propagate_down):
            raise NetError(
                f"{self.describe()}: Threshold has no gradient; stop backpropagation into its bottom "
                f"(propagate_down: false) or remove the layer from the path to the loss"
            )
