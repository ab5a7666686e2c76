"""What a Net reports when training goes wrong: Caffe's debug_info statistics, and where a NaN or Inf came from.

With `debug_info: true` (NetParameter or SolverParameter), the Net logs, as Caffe does, the mean absolute value of
every top after each layer's forward and of every param (`[Forward]`), of every bottom diff and param diff after
each layer's backward (`[Backward]`), and after a whole backward the L1 and L2 norms of all params and their
diffs. `first_non_finite` finds, after a pass produced a non-finite loss, the first layer to blame.
"""

import logging

import numpy as np

from caffelite.log import number

log = logging.getLogger("caffelite")


def _mean_abs(array):
    return number(float(np.abs(array).sum(dtype=np.float64)) / max(array.size, 1))


def log_forward(net, index):
    """Caffe's ForwardDebugInfo for layer `index`: its tops' data, then its params' data (by display name)."""
    slot = net._slots[index]
    name = slot.param.name
    for blob_name, top in zip(slot.top_names, slot.top):
        log.info("    [Forward] Layer %s, top blob %s data: %s", name, blob_name, _mean_abs(top.data))
    for param_index, param in enumerate(slot.function.params):
        log.info("    [Forward] Layer %s, param blob %s data: %s", name, _display_name(slot, param_index),
                 _mean_abs(param.data))


def log_backward(net, index):
    """Caffe's BackwardDebugInfo for layer `index`: diffs of the bottoms it fed back, then of its params."""
    slot = net._slots[index]
    name = slot.param.name
    for blob_name, bottom, needed in zip(slot.bottom_names, slot.bottom, slot.bottom_need_backward):
        if needed:
            log.info("    [Backward] Layer %s, bottom blob %s diff: %s", name, blob_name, _mean_abs(bottom.grad))
    for param_index, param in enumerate(slot.function.params):
        if _learns(slot, param_index):
            log.info("    [Backward] Layer %s, param blob %d diff: %s", name, param_index, _mean_abs(param.grad))


def log_norms(net):
    """After a whole backward: L1 and L2 norms of all learnable params, data and diff (an ERROR line in Caffe)."""
    sums = np.zeros(4)
    for tensor in net.learnable_params:
        data, grad = tensor.data.astype(np.float64), tensor.grad.astype(np.float64)
        sums += (np.abs(data).sum(), np.abs(grad).sum(), np.square(data).sum(), np.square(grad).sum())
    log.error("    [Backward] All net params (data, diff): L1 norm = (%s, %s); L2 norm = (%s, %s)",
              number(sums[0]), number(sums[1]), number(np.sqrt(sums[2])), number(np.sqrt(sums[3])))


def first_non_finite(net):
    """Where a pass went non-finite: (layer name, what) for the first layer in forward order with a NaN or Inf
    weight, else the first whose output is not finite when the pass is replayed layer by layer (None if none).

    The replay runs every layer that has bottoms on the blobs as they are: layers without bottoms (data layers)
    are not run again, so the batch that failed is the one replayed.
    """
    for slot in net._slots:
        for index, param in enumerate(slot.function.params):
            if not np.isfinite(param.data).all():
                return slot.param.name, f"param {_display_name(slot, index)} (its weights) is not finite"
    for slot in net._slots:
        if slot.bottom:
            slot.function.reshape(slot.bottom, slot.top)
            slot.function.forward(slot.bottom, slot.top)
        for blob_name, top in zip(slot.top_names, slot.top):
            if not np.isfinite(top.data).all():
                return slot.param.name, f"its output '{blob_name}' is not finite"
    return None


def _display_name(slot, index):
    """Caffe's param display name: the ParamSpec's name if it has one, else the param's index."""
    specs = slot.param.param
    return specs[index].name if index < len(specs) and specs[index].name else str(index)


def _learns(slot, index):
    specs = slot.param.param
    return not (index < len(specs) and specs[index].HasField("lr_mult") and specs[index].lr_mult == 0)
