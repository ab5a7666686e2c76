"""caffe.layer_type_list(): the registered layer types, as pycaffe lists them."""

import caffelite as caffe


def test_standard_types_are_listed():
    types = caffe.layer_type_list()
    for name in ("Data", "Convolution", "InnerProduct", "Python", "Input", "SoftmaxWithLoss"):
        assert name in types, f"{name} not in layer_type_list()"


def test_list_is_sorted_and_without_duplicates():
    types = caffe.layer_type_list()
    assert list(types) == sorted(set(types))
    assert "NoSuchLayer" not in types
