"""Batch passes split across threads: every slice covered once, errors surface, layers give identical bits."""

import threading

import numpy as np
import pytest

import caffelite.layers._threads as threads
import caffelite.layers.relu as relu_module
from layer_harness import make_layer, run_forward


@pytest.fixture
def forced(monkeypatch):
    """Threads on for any size, three of them (uneven slices)."""
    monkeypatch.setattr(threads, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(threads, "ELEMENTWISE_MIN_ELEMENTS", 0)
    monkeypatch.setenv("CAFFELITE_NUM_THREADS", "3")


def test_thread_count_follows_the_environment(monkeypatch):
    monkeypatch.setenv("CAFFELITE_NUM_THREADS", "5")
    assert threads.thread_count() == 5
    monkeypatch.delenv("CAFFELITE_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.thread_count() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert threads.thread_count() >= 1


def test_slices_cover_the_batch_once_on_several_threads(forced):
    seen, names = [], set()

    def body(lo, hi):
        seen.append((lo, hi))
        names.add(threading.current_thread().name)

    threads.over_batch(10, body, elements=10)
    assert sorted(seen) == [(0, 3), (3, 6), (6, 10)]
    assert threading.current_thread().name in names
    assert any(name.startswith("caffelite-batch") for name in names)


def test_small_passes_stay_on_the_calling_thread(monkeypatch):
    monkeypatch.setenv("CAFFELITE_NUM_THREADS", "4")
    seen = []
    threads.over_batch(8, lambda lo, hi: seen.append((lo, hi, threading.current_thread())), elements=100)
    assert seen == [(0, 8, threading.current_thread())]


def test_a_pass_may_set_its_own_minimum(monkeypatch):
    monkeypatch.setenv("CAFFELITE_NUM_THREADS", "2")
    seen = []
    threads.over_batch(8, lambda lo, hi: seen.append((lo, hi)), elements=threads.MIN_ELEMENTS, minimum=10**9)
    assert seen == [(0, 8)]
    threads.over_batch(8, lambda lo, hi: seen.append((lo, hi)), elements=100, minimum=100)
    assert sorted(seen[1:]) == [(0, 4), (4, 8)]


def test_elementwise_passes_take_their_own_minimum(monkeypatch):
    monkeypatch.setenv("CAFFELITE_NUM_THREADS", "2")
    names = []

    def body(x):
        names.append(threading.current_thread().name)
        x += 1

    small = np.zeros(threads.ELEMENTWISE_MIN_ELEMENTS - 1)
    threads.elementwise(body, small)
    assert names == [threading.current_thread().name] and np.all(small == 1)
    threads.elementwise(body, small, minimum=len(small))
    assert len(names) == 3 and any(name.startswith("caffelite-batch") for name in names[1:]) and np.all(small == 2)


def test_an_error_in_any_slice_reaches_the_caller(forced):
    def body(lo, hi):
        if lo > 0:
            raise ValueError(f"slice {lo}")

    with pytest.raises(ValueError, match="slice"):
        threads.over_batch(6, body, elements=6)


def test_copy_split_copies_along_the_given_axis(forced):
    source = np.arange(2 * 7 * 3).reshape(2, 7, 3)
    target = np.zeros_like(source)
    threads.copy_split(target, source, axis=1)
    np.testing.assert_array_equal(target, source)


def test_elementwise_covers_every_element_and_leaves_strided_views_alone(forced):
    a, b = np.arange(10.0), np.zeros(10)
    threads.elementwise(np.copyto, b, a)
    np.testing.assert_array_equal(b, a)
    target = np.zeros((4, 4))
    threads.elementwise(lambda t, s: np.add(t, s, out=t), target[:, ::2], np.ones((4, 2)))
    assert target[:, ::2].sum() == 8 and target[:, 1::2].sum() == 0


LAYERS = [
    ('type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 pad: 1 '
     'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }', (5, 3, 7, 6)),
    ('type: "Convolution" convolution_param { num_output: 3 kernel_size: 2 stride: 2 group: 3 '
     'weight_filler { type: "gaussian" } }', (4, 6, 8, 8)),
    ('type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" } }',
     (5, 3, 4, 4)),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }', (5, 3, 9, 8)),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }', (5, 3, 8, 8)),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 }', (5, 3, 7, 7)),
    ('type: "ReLU"', (5, 3, 4, 4)),
    ('type: "LRN" lrn_param { local_size: 5 alpha: 0.1 beta: 0.75 }', (5, 7, 4, 4)),
    ('type: "LRN" lrn_param { local_size: 3 alpha: 0.1 norm_region: WITHIN_CHANNEL }', (5, 2, 5, 4)),
    ('type: "Scale" scale_param { bias_term: true filler { type: "gaussian" } bias_filler { type: "gaussian" } }',
     (5, 3, 4, 4)),
    ('type: "BatchNorm" batch_norm_param { use_global_stats: true }', (5, 3, 4, 4)),
    ('type: "Pooling" pooling_param { pool: AVE global_pooling: true }', (5, 3, 4, 4)),
]


def _forward_backward(text, shape):
    rng = np.random.default_rng(0)
    x = rng.integers(-4, 5, size=shape).astype(np.float32)  # ties: the first max must win in every slice
    layer, bottom, top = make_layer(f'name: "l" bottom: "x" top: "y" {text}', [x], dtype=np.float32, seed=1)
    (y,) = run_forward(layer, bottom, top)
    top[0].grad[...] = rng.normal(size=top[0].shape)
    layer.backward(top, [True], bottom)
    return [y.copy(), bottom[0].grad.copy()] + [p.grad.copy() for p in layer.params]


@pytest.mark.parametrize("text, shape", LAYERS)
def test_layers_give_the_same_bits_on_one_thread_and_on_several(text, shape, monkeypatch):
    monkeypatch.setenv("CAFFELITE_NUM_THREADS", "1")
    alone = _forward_backward(text, shape)
    monkeypatch.setattr(threads, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(threads, "ELEMENTWISE_MIN_ELEMENTS", 0)
    monkeypatch.setattr(relu_module, "_BACKWARD_MIN_ELEMENTS", 0)
    monkeypatch.setenv("CAFFELITE_NUM_THREADS", "3")
    split = _forward_backward(text, shape)
    for a, b in zip(alone, split):
        np.testing.assert_array_equal(a, b)


def test_a_forked_child_makes_its_own_workers(forced):
    """After fork only the forking thread exists; the child must not hand slices to the parent's workers."""
    import os

    threads.over_batch(4, lambda lo, hi: None, elements=4)  # the parent's pool now has workers
    pid = os.fork()
    if pid == 0:  # the child: run a split pass, exit 0 if it completes
        try:
            seen = []
            threads.over_batch(4, lambda lo, hi: seen.append(lo), elements=4)
            os._exit(0 if sorted(seen) == [0, 1, 2] else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
