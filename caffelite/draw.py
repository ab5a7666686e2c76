"""Pictures of a network definition (pycaffe's caffe.draw): a NetParameter to a Graphviz graph, then an image.

Layers are boxes coloured by kind, blobs are grey octagons, an in-place layer is a green box; rendering runs
Graphviz's `dot`, which is a system program (`apt-get install graphviz`), not a Python package.
"""

import shutil
import subprocess

import pydot

from caffelite.errors import CaffeliteError, NetError
from caffelite.proto import caffe_pb2

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}
_LEARNING_TYPES = ("Convolution", "Deconvolution", "InnerProduct")
_MISSING_DOT = "Graphviz's dot is not installed (apt-get install graphviz)"


class GraphvizError(CaffeliteError):
    """Graphviz's `dot` is missing or refused to render the graph."""


def get_pooling_types_dict():
    """{PoolMethod number: name}, e.g. {0: 'MAX', 1: 'AVE', 2: 'STOCHASTIC'}."""
    return {value.number: name for name, value in caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values_by_name.items()}


def get_edge_label(layer):
    """The label of the edges leaving `layer`: the batch size of a Data layer, num_output of a learning layer."""
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weights, bias) learning-rate multipliers of a Convolution, Deconvolution or InnerProduct layer."""
    if layer.type not in _LEARNING_TYPES:
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier")
    mults = [param.lr_mult for param in layer.param]
    if len(mults) > 2:
        raise NetError(f"layer '{layer.name}' ({layer.type}): expects at most 2 param entries, got {len(mults)}")
    return tuple(mults + [1.0] * (2 - len(mults)))


def _first(values, default):
    return values[0] if len(values) else default


def _spatial(layer):
    """(kernel, stride, pad) as text: a number for square windows, HxW when kernel_h/kernel_w are given."""
    if layer.type == "Pooling":
        p = layer.pooling_param
        if p.global_pooling:
            return "global", "1", "0"
        kernel = f"{p.kernel_h}x{p.kernel_w}" if p.HasField("kernel_h") else str(p.kernel_size)
        stride = f"{p.stride_h}x{p.stride_w}" if p.HasField("stride_h") else str(p.stride)
        pad = f"{p.pad_h}x{p.pad_w}" if p.HasField("pad_h") else str(p.pad)
        return kernel, stride, pad
    p = layer.convolution_param
    kernel = f"{p.kernel_h}x{p.kernel_w}" if p.HasField("kernel_h") else str(_first(p.kernel_size, 1))
    stride = f"{p.stride_h}x{p.stride_w}" if p.HasField("stride_h") else str(_first(p.stride, 1))
    pad = f"{p.pad_h}x{p.pad_w}" if p.HasField("pad_h") else str(_first(p.pad, 0))
    return kernel, stride, pad


def get_layer_label(layer, rankdir, display_lrm=False):
    """The quoted node label: name, (type), and for windowed layers kernel/stride/pad; optionally lr multipliers.

    Parts are stacked on separate lines for a horizontal layout (LR/RL), where height is free, and joined by
    spaces for a vertical one (TB/BT).
    """
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    if layer.type == "Pooling":
        kind = f"({layer.type} {get_pooling_types_dict()[layer.pooling_param.pool]})"
    else:
        kind = f"({layer.type})"
    parts = [layer.name, kind]
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        kernel, stride, pad = _spatial(layer)
        parts.append(separator.join([f"kernel size: {kernel}", f"stride: {stride}", f"pad: {pad}"]))
    if display_lrm and layer.type in _LEARNING_TYPES:
        weights, bias = get_layer_lr_mult(layer)
        if weights or bias:
            parts.append(f"lr mult: {weights:.1f}, {bias:.1f}")
    # The quotes keep dot from reading the colons as port separators.
    return '"%s"' % separator.join(parts)


def choose_color_by_layertype(layertype):
    """The fill colour of a layer box: red convolutions, orange pooling, purple inner products, blue otherwise."""
    if layertype in ("Convolution", "Deconvolution"):
        return "#FF5050"
    if layertype == "Pooling":
        return "#FF9900"
    if layertype == "InnerProduct":
        return "#CC33FF"
    return "#6495ED"


def _in_phase(layer, phase):
    """Whether `layer` is part of the net in `phase` by its include/exclude rules (phase None: always)."""
    if phase is None:
        return True
    if layer.include and layer.exclude:
        raise NetError(f"layer '{layer.name}' ({layer.type}): has both include and exclude rules; give one kind")
    # A rule without a phase places no condition on the phase (as in Caffe's StateMeetsRule).
    def matches(rule):
        return not rule.HasField("phase") or rule.phase == phase
    if layer.include:
        return any(matches(rule) for rule in layer.include)
    return not any(matches(rule) for rule in layer.exclude if rule.HasField("phase"))


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """A pydot.Dot of `caffe_net` (a NetParameter): a node per layer and per blob, edges bottom -> layer -> top.

    phase (caffe.TRAIN, caffe.TEST or None for all layers) drops the layers its include/exclude rules exclude.
    """
    graph = pydot.Dot(caffe_net.name or "Net", graph_type="digraph", rankdir=rankdir)
    nodes = {}
    edges = []
    for layer in caffe_net.layer:
        if not _in_phase(layer, phase):
            continue
        layer_key = f"{layer.name}_{layer.type}"
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        in_place = len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]
        if in_place:
            style = NEURON_LAYER_STYLE
        else:
            style = dict(LAYER_STYLE_DEFAULT, fillcolor=choose_color_by_layertype(layer.type))
        nodes[layer_key] = pydot.Node(label, **style)
        for bottom in layer.bottom:
            nodes[bottom + "_blob"] = pydot.Node(bottom, **BLOB_STYLE)
            edges.append((bottom + "_blob", layer_key, '""'))
        for top in layer.top:
            nodes[top + "_blob"] = pydot.Node(top, **BLOB_STYLE)
            edges.append((layer_key, top + "_blob", get_edge_label(layer) if label_edges else '""'))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(nodes[src], nodes[dst], label=label))
    return graph


def _render(graph, ext):
    """The graph rendered by `dot -T<ext>`, as bytes; 'raw' gives the dot source itself, without Graphviz."""
    source = graph.to_string().encode("utf-8")
    if ext == "raw":
        return source
    program = shutil.which("dot")
    if program is None:
        raise GraphvizError(f"cannot draw the net as {ext!r}: {_MISSING_DOT}")
    try:
        result = subprocess.run([program, f"-T{ext}"], input=source, capture_output=True, check=False)
    except OSError as exc:
        raise GraphvizError(f"cannot run {program}: {exc}; {_MISSING_DOT}?") from exc
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", errors="replace").strip()
        raise GraphvizError(f"dot could not render the net as {ext!r}: {message}")
    return result.stdout


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The image of `caffe_net` in format `ext` (png, svg, pdf, dot, ... any dot -T format, or 'raw'), as bytes."""
    return _render(get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm), ext)


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Draw `caffe_net` into `filename`, in the format its extension names ('.raw' writes the dot source)."""
    ext = str(filename)[str(filename).rfind(".") + 1:]
    image = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(filename, "wb") as out:
        out.write(image)
