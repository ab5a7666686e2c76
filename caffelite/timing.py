"""Per-layer forward/backward timing of a Net: the measurement behind `caffelite time` (Caffe's `caffe time`).

    net = Net("lenet_train_test.prototxt", TRAIN)
    result = time_net(net, iterations=50)
    for layer in result.layers:
        print(layer.name, layer.forward_ms, layer.backward_ms)

Forward of a layer includes its reshape, as Caffe's Layer::Forward does. Backward runs the layers the Net itself
would run backward (those under a loss); the others cost nothing in training, so they are timed as 0 ms.
"""

import time
from dataclasses import dataclass, field


@dataclass
class LayerTime:
    """Average milliseconds per iteration of one layer."""

    name: str
    type: str
    forward_ms: float
    backward_ms: float


@dataclass
class TimingResult:
    """What `time_layers` measured; every `*_ms` but `total_ms` and `iteration_ms` is a per-iteration average."""

    iterations: int
    layers: list
    forward_ms: float
    backward_ms: float
    forward_backward_ms: float
    total_ms: float
    iteration_ms: list = field(default_factory=list)
    initial_loss: float = None


def warm_up(net):
    """One clean forward and backward pass, so lazily sized buffers exist before the clock runs; the loss."""
    loss = net.forward_range()
    net.backward_range()
    return loss


def time_net(net, iterations=50, on_iteration=None, clock=time.perf_counter):
    """`warm_up` then `time_layers`; the result carries the warm-up loss as `initial_loss`."""
    loss = warm_up(net)
    result = time_layers(net, iterations, on_iteration=on_iteration, clock=clock)
    result.initial_loss = loss
    return result


def time_layers(net, iterations=50, on_iteration=None, clock=time.perf_counter):
    """Run `iterations` forward+backward passes layer by layer, timing each layer with `clock` (seconds).

    `on_iteration(index, milliseconds)` is called after each pass (index from 1), e.g. to log progress; its own
    cost counts in the total, as Caffe's per-iteration log line does.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    slots = net._slots
    forward = [0.0] * len(slots)
    backward = [0.0] * len(slots)
    forward_total = backward_total = 0.0
    per_iteration = []
    started = clock()
    for index in range(1, iterations + 1):
        pass_start = clock()
        for position, slot in enumerate(slots):
            forward[position] += _timed(clock, _forward_one, slot)
        forward_end = clock()
        for position in reversed(range(len(slots))):
            if slots[position].need_backward:
                backward[position] += _timed(clock, _backward_one, slots[position])
        backward_end = clock()
        forward_total += forward_end - pass_start
        backward_total += backward_end - forward_end
        per_iteration.append(_ms(backward_end - pass_start))
        if on_iteration:
            on_iteration(index, per_iteration[-1])
    total = clock() - started
    layers = [
        LayerTime(slot.param.name, slot.param.type, _ms(f) / iterations, _ms(b) / iterations)
        for slot, f, b in zip(slots, forward, backward)
    ]
    return TimingResult(
        iterations=iterations,
        layers=layers,
        forward_ms=_ms(forward_total) / iterations,
        backward_ms=_ms(backward_total) / iterations,
        forward_backward_ms=_ms(total) / iterations,
        total_ms=_ms(total),
        iteration_ms=per_iteration,
    )


def _forward_one(slot):
    slot.function.reshape(slot.bottom, slot.top)
    slot.function.forward(slot.bottom, slot.top)


def _backward_one(slot):
    # The Net seeds a loss top's grad with its weight just before that layer's backward; so do we.
    for index, weight in slot.loss_weights:
        slot.top[index].grad[...] = weight
    slot.function.backward(slot.top, slot.bottom_need_backward, slot.bottom)


def _timed(clock, step, slot):
    start = clock()
    step(slot)
    return clock() - start


def _ms(seconds):
    return seconds * 1000.0
