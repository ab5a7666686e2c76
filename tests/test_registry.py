"""Registries: decorator registration, lookups whose errors list the known names, and the layer registry."""

import pytest

import caffelite
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
    from caffelite.function import LAYERS

    assert LAYERS.get("ReLU").type == "ReLU"
