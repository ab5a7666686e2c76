"""Registries: decorator registration, lookups whose errors list the known names, and the layer registry."""

from pathlib import Path

import pytest

import caffelite
from caffelite.function import LAYERS
from caffelite.errors import CaffeliteError, UnknownNameError
from caffelite.registry import Registry


def test_register_and_get():
    things = Registry("thing")

    @things.register("A")
    class A:
        pass

    assert things.get("A") is A and "A" in things and things.names() == ["A"]


def test_unknown_names_list_the_known_ones():
    things = Registry("thing")
    things.register("b")(object)
    things.register("a")(object)
    with pytest.raises(UnknownNameError, match=r"unknown thing 'c' \(known: a, b\)") as info:
        things.get("c")
    assert isinstance(info.value, CaffeliteError)


def test_registering_a_name_twice_is_refused():
    things = Registry("thing")
    things.register("a")(object)
    with pytest.raises(ValueError, match="twice"):
        things.register("a")(object)


def test_layer_type_list_holds_the_core_layers():
    names = caffelite.layer_type_list()
    core = {"Input", "DummyData", "Data", "InnerProduct", "Convolution", "Pooling", "ReLU", "Sigmoid", "TanH",
            "Softmax", "SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "Dropout", "Split", "Flatten"}
    assert core <= set(names) and names == sorted(names)


def test_register_layer_sets_the_type_name():
    assert LAYERS.get("ReLU").type == "ReLU"


BVLC_LAYER_TYPES = """
Data ImageData HDF5Data HDF5Output Input WindowData MemoryData DummyData
Convolution Deconvolution Pooling SPP Crop Im2col RNN LSTM LSTMUnit InnerProduct Dropout Embed LRN MVN BatchNorm
ReLU PReLU ELU Sigmoid TanH AbsVal Power Exp Log BNLL Threshold Clip Swish Bias Scale
Flatten Reshape BatchReindex Split Concat Slice Eltwise Filter Parameter Reduction Silence ArgMax Softmax Tile Python
SoftmaxWithLoss MultinomialLogisticLoss InfogainLoss EuclideanLoss HingeLoss SigmoidCrossEntropyLoss
ContrastiveLoss Accuracy
""".split()
FORK_LAYER_TYPES = ["GELU", "Upsample", "Interp", "SmoothL1Loss", "L1Loss"]


def test_every_bvlc_layer_type_and_the_fork_additions_are_registered():
    assert len(BVLC_LAYER_TYPES) == 61
    assert set(BVLC_LAYER_TYPES + FORK_LAYER_TYPES) <= set(caffelite.layer_type_list())


def test_every_registered_layer_has_a_test_module_named_after_its_module():
    tests = Path(__file__).resolve().parent / "layers"
    missing = [
        name for name in LAYERS.names()
        if not (tests / f"test_{LAYERS.get(name).__module__.rsplit('.', 1)[-1]}.py").is_file()
    ]
    assert not missing, f"layer types without tests/layers/test_<module>.py: {missing}"
