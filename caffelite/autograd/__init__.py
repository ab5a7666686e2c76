"""Define-by-run: the same Functions as the Net, called on Tensors one at a time, with a tape for backward.

    from caffelite import autograd as ag
    x = ag.Tensor(2.5, requires_grad=True)
    y = ag.Tensor(0.5, requires_grad=True)
    z = x / y                       # 5.0
    z.backward()                    # x.grad == 2.0, y.grad == -10.0

    conv = ag.layer("Convolution", num_output=20, kernel_size=5, weight_filler=dict(type="xavier"))
    ip = ag.layer("InnerProduct", num_output=10)
    loss = ag.layer("SoftmaxWithLoss")(ip(conv(images)), labels)
    loss.backward()                 # conv.params[0].grad, ...
    ag.SGD(ag.parameters(conv, ip), lr=0.01, momentum=0.9).step()

A layer runs its Function's own forward and, on backward, its own backward (Caffe's contract: bottoms' grads
assigned, params' grads added), so it behaves exactly as in a Net. Arithmetic on Tensors (+ - * / @, sum, mean,
view, .T, negation) is made of small Functions of the same kind, with numpy broadcasting. Gradients accumulate
into `.grad` of the leaves that require them until `zero_grad`.
"""

from caffelite.autograd.layer import Layer, layer, parameters
from caffelite.autograd.optim import SGD
from caffelite.autograd.tape import Tensor, no_grad

__all__ = ["SGD", "Layer", "Tensor", "layer", "no_grad", "parameters"]
