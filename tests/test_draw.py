"""caffelite.draw (pycaffe's caffe.draw): every bundled and conformance net draws; labels, phases, missing Graphviz."""

import shutil
from pathlib import Path

import pytest
from PIL import Image

from caffelite import TEST, TRAIN, draw
from caffelite.errors import NetError
from caffelite.io.prototxt import read_net_text
from caffelite.proto import caffe_pb2
from google.protobuf import text_format
from shared_data import PROJECT, shared_path

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (apt-get install graphviz)")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LENET_TRAIN_TEST = PROJECT / "models" / "lenet" / "lenet_train_test.prototxt"


def _net_files(root):
    return sorted(p for p in Path(root).rglob("*.prototxt") if "solver" not in p.name)


def _layer(text):
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def _sweep(paths):
    """Every net renders to PNG (the 100+ layer nets take dot a few seconds each)."""
    for path in paths:
        image = draw.draw_net(read_net_text(path), "LR", ext="png")
        assert image.startswith(PNG_MAGIC), path


@needs_dot
def test_every_bundled_model_draws():
    paths = _net_files(PROJECT / "models")
    assert len(paths) >= 5
    _sweep(paths)


@needs_dot
def test_every_conformance_net_draws():
    paths = _net_files(shared_path("conformance"))
    assert len(paths) >= 30
    _sweep(paths)


@needs_dot
@pytest.mark.parametrize("path, rankdir", [
    (LENET_TRAIN_TEST, "LR"),
    (PROJECT / "models" / "cifar10_quick" / "cifar10_quick.prototxt", "TB"),
])
def test_draw_net_to_file_is_a_real_image(path, rankdir, tmp_path):
    out = tmp_path / "net.png"
    draw.draw_net_to_file(read_net_text(path), str(out), rankdir)
    with Image.open(out) as image:
        image.load()
        assert image.format == "PNG" and image.width > 100 and image.height > 100
        if rankdir == "TB":
            assert image.height > image.width  # a vertical chain of 13 layers


@needs_dot
def test_svg_output_holds_the_labels(tmp_path):
    out = tmp_path / "lenet.svg"
    draw.draw_net_to_file(read_net_text(LENET_TRAIN_TEST), out)
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "conv1" in svg and "(Pooling MAX)" in svg


def test_conv_label_lists_kernel_stride_pad():
    conv = _layer('name: "conv1" type: "Convolution" convolution_param { num_output: 20 kernel_size: 5 stride: 2 pad: 1 }')
    assert draw.get_layer_label(conv, "LR") == r'"conv1\n(Convolution)\nkernel size: 5\nstride: 2\npad: 1"'
    assert draw.get_layer_label(conv, "TB") == '"conv1 (Convolution) kernel size: 5 stride: 2 pad: 1"'
    assert draw.get_edge_label(conv) == "20"
    bare = _layer('name: "c" type: "Deconvolution" convolution_param { num_output: 3 }')
    assert draw.get_layer_label(bare, "TB") == '"c (Deconvolution) kernel size: 1 stride: 1 pad: 0"'


def test_pool_and_ip_labels():
    pool = _layer('name: "pool2" type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 }')
    assert draw.get_layer_label(pool, "BT") == '"pool2 (Pooling AVE) kernel size: 3 stride: 2 pad: 0"'
    ip = _layer('name: "ip1" type: "InnerProduct" param { lr_mult: 1 } param { lr_mult: 2 } '
                'inner_product_param { num_output: 500 }')
    assert draw.get_layer_label(ip, "TB") == '"ip1 (InnerProduct)"'
    assert draw.get_layer_label(ip, "TB", display_lrm=True) == '"ip1 (InnerProduct) lr mult: 1.0, 2.0"'
    assert draw.get_edge_label(ip) == "500"
    frozen = _layer('name: "f" type: "InnerProduct" param { lr_mult: 0 } param { lr_mult: 0 }')
    assert draw.get_layer_label(frozen, "TB", display_lrm=True) == '"f (InnerProduct)"'
    data = _layer('name: "d" type: "Data" data_param { batch_size: 64 }')
    assert draw.get_edge_label(data) == "Batch 64"
    assert draw.get_edge_label(_layer('name: "r" type: "ReLU"')) == '""'


def test_pooling_types_and_colors():
    assert draw.get_pooling_types_dict() == {0: "MAX", 1: "AVE", 2: "STOCHASTIC"}
    colors = {t: draw.choose_color_by_layertype(t) for t in ("Convolution", "Pooling", "InnerProduct", "ReLU")}
    assert len(set(colors.values())) == 4
    assert draw.choose_color_by_layertype("Deconvolution") == colors["Convolution"]


def _node_names(graph):
    return {node.get_name().strip('"') for node in graph.get_nodes()}


def test_phase_filters_layers():
    net = read_net_text(LENET_TRAIN_TEST)
    everything = _node_names(draw.get_pydot_graph(net, "LR"))
    train = _node_names(draw.get_pydot_graph(net, "LR", phase=TRAIN))
    test = _node_names(draw.get_pydot_graph(net, "LR", phase=TEST))
    assert "accuracy" in test and "accuracy" not in train and "accuracy" in everything
    assert train < everything and test <= everything and train != test
    assert any(name.startswith(r"conv1\n(Convolution)") for name in train & test)


def test_graph_structure_and_in_place_layers():
    net = text_format.Parse("""name: "small"
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 7 } }
        layer { name: "relu" type: "ReLU" bottom: "y" top: "y" }""", caffe_pb2.NetParameter())
    graph = draw.get_pydot_graph(net, "LR")
    assert graph.get_name() == "small"
    nodes = {node.get_name().strip('"'): node for node in graph.get_nodes()}
    assert set(nodes) == {"x", "y", r"ip\n(InnerProduct)", r"relu\n(ReLU)"}
    assert nodes[r"relu\n(ReLU)"].get("fillcolor") == draw.NEURON_LAYER_STYLE["fillcolor"]
    assert nodes[r"ip\n(InnerProduct)"].get("fillcolor") == draw.choose_color_by_layertype("InnerProduct")
    assert nodes["x"].get("shape") == "octagon"
    labels = sorted(str(edge.get("label")) for edge in graph.get_edges())
    assert labels == ['""', '""', '""', "7"]
    unlabelled = draw.get_pydot_graph(net, "LR", label_edges=False)
    assert all(edge.get("label") == '""' for edge in unlabelled.get_edges())


def test_include_and_exclude_together_is_refused():
    net = text_format.Parse('layer { name: "bad" type: "ReLU" include { phase: TRAIN } exclude { phase: TEST } }',
                            caffe_pb2.NetParameter())
    with pytest.raises(NetError, match="'bad'.*both include and exclude"):
        draw.get_pydot_graph(net, "LR", phase=TRAIN)


def test_raw_output_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "lenet.raw"
    draw.draw_net_to_file(read_net_text(LENET_TRAIN_TEST), out)
    assert out.read_text().startswith("digraph")


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no dot anywhere
    with pytest.raises(draw.GraphvizError, match=r"apt-get install graphviz"):
        draw.draw_net(read_net_text(LENET_TRAIN_TEST), "LR")


@needs_dot
def test_unknown_format_is_a_clear_error():
    with pytest.raises(draw.GraphvizError, match="'nosuchformat'"):
        draw.draw_net(read_net_text(LENET_TRAIN_TEST), "LR", ext="nosuchformat")
