"""Helpers for layer tests: build one Function from prototxt text, and Caffe-style gradient checks in float64."""

import numpy as np
from google.protobuf import text_format

import caffelite.layers  # noqa: F401  (registers every layer type)
from caffelite.function import LAYERS
from caffelite.phase import TEST
from caffelite.proto import caffe_pb2
from caffelite.rng import set_random_seed
from caffelite.tensor import Tensor


def make_layer(layer_text, bottoms, phase=TEST, dtype=np.float64, seed=1701):
    """Build, set up and reshape the layer described by `layer_text` (a LayerParameter in prototxt form).

    `bottoms` is a list of arrays. Tops are named by the param's `top` fields (one anonymous top if none);
    a top named like a bottom is that bottom's Tensor (in-place use). Returns (layer, bottom, top).
    """
    param = text_format.Parse(layer_text, caffe_pb2.LayerParameter())
    bottom = [Tensor.from_array(np.asarray(b, dtype=dtype), dtype=dtype) for b in bottoms]
    by_name = dict(zip(param.bottom, bottom))
    top_names = list(param.top) or ["top"]
    top = [by_name.get(name) or Tensor(dtype=dtype) for name in top_names]
    set_random_seed(seed)
    layer = LAYERS.get(param.type)(param, phase=phase, dtype=dtype)
    layer.check_blob_counts(len(bottom), len(top))
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    return layer, bottom, top


def run_forward(layer, bottom, top, seed=1701):
    set_random_seed(seed)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    return [t.data.copy() for t in top]


def check_float32_backward(layer, bottom, top):
    """Backward of a one-bottom float32 layer: propagate_down False leaves the bottom grad alone; True writes it
    in float32."""
    top[0].grad[...] = 1
    bottom[0].grad[...] = 7
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].grad == 7)
    layer.backward(top, [True], bottom)
    assert bottom[0].grad.dtype == np.float32


def check_gradients(layer, bottom, top, check_bottom=None, step=1e-6, tolerance=1e-6, seed=1701):
    """Compare backward() with central finite differences of f = sum_i <W_i, top_i> for fixed random W_i.

    Checks every element of the bottoms listed in `check_bottom` (default: all) and of every param.
    The random generator is reseeded before each forward so stochastic layers (Dropout) are repeatable;
    in-place layers work because bottom data is restored from a saved copy before each forward.
    """
    check_bottom = range(len(bottom)) if check_bottom is None else check_bottom
    weights_rng = np.random.default_rng(seed)
    saved = [b.data.copy() for b in bottom]

    def objective():
        for b, original in zip(bottom, saved):
            b.data[...] = original
        run_forward(layer, bottom, top, seed)
        return sum(float(np.sum(w * t.data)) for w, t in zip(top_weights, top))

    run_forward(layer, bottom, top, seed)
    top_weights = [weights_rng.standard_normal(t.shape) for t in top]
    analytic = _analytic_gradients(layer, bottom, top, top_weights, objective, check_bottom)

    targets = [(f"bottom[{i}]", saved[i]) for i in check_bottom]
    targets += [(f"param[{i}]", p.data) for i, p in enumerate(layer.params)]
    for (label, values), expected in zip(targets, analytic):
        numeric = finite_differences(objective, values, step)
        scale = np.maximum(1.0, np.maximum(np.abs(numeric), np.abs(expected)))
        error = np.abs(numeric - expected) / scale
        worst = np.unravel_index(np.argmax(error), error.shape) if error.size else ()
        assert error.size == 0 or error.max() <= tolerance, (
            f"{layer.describe()}: gradient of {label} at {worst}: analytic {expected[worst]!r}, "
            f"numeric {numeric[worst]!r}"
        )


def _analytic_gradients(layer, bottom, top, top_weights, objective, check_bottom):
    objective()
    for t, w in zip(top, top_weights):
        t.grad[...] = w
    for p in layer.params:
        p.grad[...] = 0
    propagate = [i in check_bottom for i in range(len(bottom))]
    layer.backward(top, propagate, bottom)
    return [bottom[i].grad.copy() for i in check_bottom] + [p.grad.copy() for p in layer.params]


def finite_differences(objective, values, step):
    """Central differences of objective() with respect to every element of `values` (changed in place and put back)."""
    numeric = np.zeros_like(values)
    for index in np.ndindex(values.shape):
        original = values[index]
        values[index] = original + step
        plus = objective()
        values[index] = original - step
        minus = objective()
        values[index] = original
        numeric[index] = (plus - minus) / (2 * step)
    return numeric
