"""The same network in PyTorch, built from a caffelite Net's own layers and weights (for benchmarks/speed.py).

    twin = TorchNet(net)              # copies every weight of `net`
    outputs = twin(inputs)            # {blob name: tensor}, run layer by layer in the Net's order
    twin.solver_step(inputs, solver)  # forward, backward and Caffe's SGD update, in torch

Only the layer types of the benchmarked models are translated; any other type raises NotImplementedError naming
it. Caffe's rules are kept where torch's defaults differ: pooling rounds up (ceil) with Caffe's last-window rule,
average pooling counts padding, InnerProduct flattens from its axis, BatchNorm uses stored statistics divided by
the scale factor.
"""

import numpy as np
import torch
import torch.nn.functional as F

from caffelite.proto import caffe_pb2

_POOL = caffe_pb2.PoolingParameter
_ELTWISE = caffe_pb2.EltwiseParameter


class TorchNet:
    """Runs a caffelite Net's layers with torch operators on copies of its weights."""

    def __init__(self, net, requires_grad=False):
        self.net = net
        self.slots = [s for s in net._slots if s.param.type not in ("Input", "Accuracy", "Silence")]
        self.weights = {
            s.param.name: [torch.tensor(p.data, requires_grad=requires_grad) for p in s.function.params]
            for s in self.slots
        }

    def parameters(self):
        return [w for slot in self.slots for w in self.weights[slot.param.name]]

    def __call__(self, inputs):
        blobs = {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in inputs.items()}
        for slot in self.slots:
            args = [blobs[name] for name in slot.bottom_names]
            outputs = _forward(slot, args, self.weights[slot.param.name])
            for name, value in zip(slot.top_names, outputs):
                blobs[name] = value
        return blobs

    def loss(self, blobs):
        """The Net's loss: loss-weighted sum of the loss tops."""
        total = 0
        for slot in self.slots:
            for index, weight in slot.loss_weights:
                total = total + weight * blobs[slot.top_names[index]].sum()
        return total

    def sgd(self, solver_param):
        """torch's SGD set up as Caffe's (per-parameter lr_mult and decay_mult; Caffe's momentum form)."""
        groups = []
        for slot in self.slots:
            for index, weight in enumerate(self.weights[slot.param.name]):
                spec = slot.param.param[index] if index < len(slot.param.param) else caffe_pb2.ParamSpec()
                groups.append({
                    "params": [weight],
                    "lr": solver_param.base_lr * spec.lr_mult,
                    "weight_decay": solver_param.weight_decay * spec.decay_mult,
                })
        return torch.optim.SGD(groups, lr=solver_param.base_lr, momentum=solver_param.momentum)


def _forward(slot, x, w):
    kind = slot.param.type
    if kind not in _LAYERS:
        raise NotImplementedError(f"no torch translation for layer type {kind} ({slot.param.name})")
    result = _LAYERS[kind](slot.function, slot.param, x, w)
    return result if isinstance(result, (list, tuple)) else [result]


def _convolution(layer, param, x, w):
    bias = w[1] if len(w) > 1 else None
    return F.conv2d(x[0], w[0], bias, stride=layer.stride, padding=layer.pad, dilation=layer.dilation,
                    groups=layer.group)


def _pooling(layer, param, x, w):
    ceil = layer.ceil
    if layer.method == _POOL.MAX:
        return F.max_pool2d(x[0], layer.kernel, layer.stride, layer.pad, ceil_mode=ceil)
    if layer.method == _POOL.AVE:
        return F.avg_pool2d(x[0], layer.kernel, layer.stride, layer.pad, ceil_mode=ceil, count_include_pad=True)
    raise NotImplementedError(f"no torch translation for STOCHASTIC pooling ({param.name})")


def _inner_product(layer, param, x, w):
    axis = param.inner_product_param.axis % x[0].dim()
    flat = x[0].reshape(x[0].shape[:axis] + (-1,))
    weight = w[0].t() if param.inner_product_param.transpose else w[0]
    return F.linear(flat, weight, w[1] if len(w) > 1 else None)


def _relu(layer, param, x, w):
    slope = param.relu_param.negative_slope
    return F.leaky_relu(x[0], slope) if slope else F.relu(x[0])


def _lrn(layer, param, x, w):
    lrn = param.lrn_param
    if lrn.norm_region != caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        raise NotImplementedError(f"no torch translation for WITHIN_CHANNEL LRN ({param.name})")
    return F.local_response_norm(x[0], lrn.local_size, alpha=lrn.alpha, beta=lrn.beta, k=lrn.k)


def _batch_norm(layer, param, x, w):
    # Stored statistics, never trained (torch refuses gradients for them).
    mean, variance, factor = (t.detach() for t in w)
    scale = 0.0 if float(factor.reshape(-1)[0]) == 0 else 1.0 / float(factor.reshape(-1)[0])
    return F.batch_norm(x[0], mean * scale, variance * scale, eps=param.batch_norm_param.eps, training=False)


def _scale(layer, param, x, w):
    shape = (1, -1) + (1,) * (x[0].dim() - 2)
    y = x[0] * w[0].reshape(shape)
    return y + w[1].reshape(shape) if len(w) > 1 else y


def _eltwise(layer, param, x, w):
    op = param.eltwise_param.operation
    if op == _ELTWISE.PROD:
        result = x[0]
        for other in x[1:]:
            result = result * other
        return result
    if op == _ELTWISE.MAX:
        return torch.stack(x).amax(dim=0)
    coeffs = list(param.eltwise_param.coeff) or [1.0] * len(x)
    return sum(c * t for c, t in zip(coeffs, x))


def _softmax_with_loss(layer, param, x, w):
    return F.cross_entropy(x[0], x[1].long().reshape(-1))


_LAYERS = {
    "Convolution": _convolution,
    "Pooling": _pooling,
    "InnerProduct": _inner_product,
    "ReLU": _relu,
    "LRN": _lrn,
    "BatchNorm": _batch_norm,
    "Scale": _scale,
    "Eltwise": _eltwise,
    "SoftmaxWithLoss": _softmax_with_loss,
    "Dropout": lambda layer, param, x, w: x[0],  # benchmarks run deploy nets in TEST, where Dropout is identity
    "Split": lambda layer, param, x, w: [x[0]] * len(param.top),
    "Softmax": lambda layer, param, x, w: F.softmax(x[0], dim=param.softmax_param.axis),
    "Concat": lambda layer, param, x, w: torch.cat(x, dim=param.concat_param.axis),
    "Flatten": lambda layer, param, x, w: torch.flatten(x[0], param.flatten_param.axis),
}
