"""The upgrades Caffe applies to every net and solver it reads, so files from any Caffe era load unchanged.

Order and conditions follow Caffe's UpgradeNetAsNeeded: V0 -> V1, data transformation fields, V1 -> V2,
net input fields, BatchNorm param specs. Each applied upgrade is logged as a warning naming the source.
"""

import logging
import os
from pathlib import Path

from caffelite.errors import ParseError
from caffelite.io.upgrade_v0 import net_needs_v0_upgrade, upgrade_v0_net
from caffelite.proto import caffe_pb2

log = logging.getLogger("caffelite")

_V1_TYPE_NAMES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}
_SOLVER_TYPE_NAMES = {
    "SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta",
    "ADAM": "Adam",
}
# V1 data layers whose own parameters once held the transformation fields now in transform_param.
_V1_DATA_PARAMS = {"DATA": "data_param", "IMAGE_DATA": "image_data_param", "WINDOW_DATA": "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
# Every per-type parameter of a V1 layer has the same name and message type in the current LayerParameter.
_V1_PARAM_FIELDS = tuple(f.name for f in caffe_pb2.V1LayerParameter.DESCRIPTOR.fields if f.name.endswith("_param"))


def upgrade_net(net_param, source="<net>"):
    """Bring `net_param` to the current format in place, as Caffe does on every read; returns it."""
    if len(net_param.layers) and len(net_param.layer):
        raise ParseError(
            f"{source}: mixes 'layer' (current, type: \"Name\") and 'layers' (V1, type: ENUM) definitions; "
            "write every layer as layer { type: \"...\" }"
        )
    for needs_upgrade, upgrade, what in _NET_UPGRADES:
        if needs_upgrade(net_param):
            upgrade(net_param, source)
            log.warning("%s: upgraded %s to the current format", source, what)
    return net_param


def upgrade_solver(solver_param, source="<solver>"):
    """Replace the legacy `solver_type` enum by the `type` string, in place; returns the SolverParameter."""
    if not solver_param.HasField("solver_type"):
        return solver_param
    legacy = caffe_pb2.SolverParameter.SolverType.Name(solver_param.solver_type)
    name = _SOLVER_TYPE_NAMES[legacy]
    if solver_param.HasField("type") and solver_param.type != name:
        raise ParseError(f'{source}: solver_type: {legacy} contradicts type: "{solver_param.type}"; keep only type')
    solver_param.type = name
    solver_param.ClearField("solver_type")
    log.warning("%s: upgraded solver_type: %s to type: \"%s\"", source, legacy, name)
    return solver_param


def upgrade_snapshot_prefix(solver_param, param_file):
    """Caffe's snapshot_prefix defaults: unset -> the solver file's path without extension;
    an existing directory -> that directory / the solver file's name without extension."""
    solver_file = Path(param_file)
    if not solver_param.HasField("snapshot_prefix"):
        solver_param.snapshot_prefix = str(solver_file.with_suffix(""))
    elif os.path.isdir(solver_param.snapshot_prefix):
        solver_param.snapshot_prefix = str(Path(solver_param.snapshot_prefix) / solver_file.stem)
    else:
        return solver_param
    log.info("%s: snapshot_prefix set to %s", param_file, solver_param.snapshot_prefix)
    return solver_param


def _v1_type(layer):
    return caffe_pb2.V1LayerParameter.LayerType.Name(layer.type)


def _legacy_data_params(net):
    """The parameter messages of V1 data layers, paired with their layer."""
    for layer in net.layers:
        field = _V1_DATA_PARAMS.get(_v1_type(layer))
        if field:
            yield layer, getattr(layer, field)


def _needs_data_upgrade(net):
    return any(params.HasField(name) for _, params in _legacy_data_params(net) for name in _TRANSFORM_FIELDS)


def _upgrade_data_transform(net, source):
    for layer, params in _legacy_data_params(net):
        layer.transform_param.SetInParent()  # Caffe creates both messages on every data layer it visits
        params.SetInParent()
        for name in _TRANSFORM_FIELDS:
            if params.HasField(name):
                setattr(layer.transform_param, name, getattr(params, name))
                params.ClearField(name)


def _upgrade_v1_net(net, source):
    for index, old in enumerate(net.layers):
        _upgrade_v1_layer(old, net.layer.add(), f"{source}: layers #{index} ('{old.name}')")
    net.ClearField("layers")


def _upgrade_v1_layer(old, new, where):
    new.bottom.extend(old.bottom)
    new.top.extend(old.top)
    if old.HasField("name"):
        new.name = old.name
    new.include.extend(old.include)
    new.exclude.extend(old.exclude)
    if old.HasField("type"):
        new.type = _current_type_name(old, where)
    new.blobs.extend(old.blobs)
    _upgrade_param_specs(old, new)
    new.loss_weight.extend(old.loss_weight)
    for field in _V1_PARAM_FIELDS:
        if old.HasField(field):
            getattr(new, field).CopyFrom(getattr(old, field))
    if old.HasField("layer"):
        log.error("%s: a V0 'layer' inside V1 'layers' is ignored", where)


def _current_type_name(old, where):
    legacy = _v1_type(old)
    if legacy not in _V1_TYPE_NAMES:
        raise ParseError(f"{where}: V1 layer type {legacy} has no current equivalent")
    return _V1_TYPE_NAMES[legacy]


def _upgrade_param_specs(old, new):
    """V1 kept one list per ParamSpec field (param names, share modes, blobs_lr, weight_decay); zip them."""
    count = max(len(old.param), len(old.blob_share_mode), len(old.blobs_lr), len(old.weight_decay))
    specs = [new.param.add() for _ in range(count)]
    share_modes = caffe_pb2.V1LayerParameter.DimCheckMode
    for spec, name in zip(specs, old.param):
        spec.name = name
    for spec, mode in zip(specs, old.blob_share_mode):
        spec.share_mode = caffe_pb2.ParamSpec.DimCheckMode.Value(share_modes.Name(mode))
    for spec, lr in zip(specs, old.blobs_lr):
        spec.lr_mult = lr
    for spec, decay in zip(specs, old.weight_decay):
        spec.decay_mult = decay


def _upgrade_input(net, source):
    """Net-level input fields become an Input layer in front; bare `input` names (old caffemodels) just go."""
    if len(net.input_shape) or len(net.input_dim):
        layer = caffe_pb2.LayerParameter(name="input", type="Input", top=net.input)
        layer.input_param.shape.extend(_input_shapes(net, source))
        rest = caffe_pb2.NetParameter(layer=net.layer)
        net.ClearField("layer")
        net.layer.append(layer)
        net.layer.extend(rest.layer)
    for field in ("input", "input_shape", "input_dim"):
        net.ClearField(field)


def _input_shapes(net, source):
    inputs = len(net.input)
    if len(net.input_shape):
        if len(net.input_shape) != inputs:
            raise ParseError(f"{source}: {inputs} input(s) but {len(net.input_shape)} input_shape(s)")
        return list(net.input_shape)
    if len(net.input_dim) != 4 * inputs:
        raise ParseError(f"{source}: {inputs} input(s) need {4 * inputs} input_dim values, got {len(net.input_dim)}")
    dims = list(net.input_dim)
    return [caffe_pb2.BlobShape(dim=dims[4 * i:4 * i + 4]) for i in range(inputs)]


def _old_batchnorm_layers(net):
    """BatchNorm layers declaring three ParamSpecs, as the first BatchNorm definition required."""
    return [layer for layer in net.layer if layer.type == "BatchNorm" and len(layer.param) == 3]


def _upgrade_batchnorm(net, source):
    # Its blobs are statistics, updated by the layer itself; the solver must never move them.
    for layer in _old_batchnorm_layers(net):
        for spec in layer.param:
            spec.lr_mult = 0.0
            spec.decay_mult = 0.0


_NET_UPGRADES = (
    (net_needs_v0_upgrade, upgrade_v0_net, "V0 layer definitions (layers { layer { ... } })"),
    (_needs_data_upgrade, _upgrade_data_transform, "data transformation fields of data layers"),
    (lambda net: len(net.layers) > 0, _upgrade_v1_net, "V1 'layers' definitions"),
    (lambda net: len(net.input) > 0, _upgrade_input, "net input fields"),
    (lambda net: bool(_old_batchnorm_layers(net)), _upgrade_batchnorm, "BatchNorm param specs"),
)
