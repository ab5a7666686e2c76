"""V0 nets (Caffe before 2014: `layers { layer { type: "conv" ... } }`) become V1 nets, as in Caffe's UpgradeV0Net."""

import logging

from caffelite.errors import ParseError
from caffelite.proto import caffe_pb2

log = logging.getLogger("caffelite")

_V0_TYPES = {
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION", "data": "DATA",
    "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS", "flatten": "FLATTEN", "hdf5_data": "HDF5_DATA",
    "hdf5_output": "HDF5_OUTPUT", "im2col": "IM2COL", "images": "IMAGE_DATA", "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT", "lrn": "LRN", "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS",
    "pool": "POOLING", "relu": "RELU", "sigmoid": "SIGMOID", "softmax": "SOFTMAX", "softmax_loss": "SOFTMAX_LOSS",
    "split": "SPLIT", "tanh": "TANH", "window_data": "WINDOW_DATA",
}


def _conv_or_ip(field):
    return {"conv": f"convolution_param.{field}", "innerproduct": f"inner_product_param.{field}"}


def _conv_or_pool(field):
    return {"conv": f"convolution_param.{field}", "pool": f"pooling_param.{field}"}


def _data_layers(field, types=("data", "hdf5_data", "images", "window_data")):
    params = {"data": "data_param", "hdf5_data": "hdf5_data_param", "images": "image_data_param",
              "window_data": "window_data_param", "infogain_loss": "infogain_loss_param"}
    return {kind: f"{params[kind]}.{field}" for kind in types}


def _only(kind, path):
    return {kind: path}


# Where each V0 field lands in the V1 layer, by V0 layer type ("*": whatever the type).
_V0_FIELDS = {
    "num_output": _conv_or_ip("num_output"),
    "biasterm": _conv_or_ip("bias_term"),
    "weight_filler": _conv_or_ip("weight_filler"),
    "bias_filler": _conv_or_ip("bias_filler"),
    "pad": _conv_or_pool("pad"),
    "kernelsize": _conv_or_pool("kernel_size"),
    "group": _only("conv", "convolution_param.group"),
    "stride": _conv_or_pool("stride"),
    "pool": _only("pool", "pooling_param.pool"),
    "dropout_ratio": _only("dropout", "dropout_param.dropout_ratio"),
    "local_size": _only("lrn", "lrn_param.local_size"),
    "alpha": _only("lrn", "lrn_param.alpha"),
    "beta": _only("lrn", "lrn_param.beta"),
    "k": _only("lrn", "lrn_param.k"),
    "source": _data_layers("source", ("data", "hdf5_data", "images", "window_data", "infogain_loss")),
    "scale": _only("*", "transform_param.scale"),
    "meanfile": _only("*", "transform_param.mean_file"),
    "batchsize": _data_layers("batch_size"),
    "cropsize": _only("*", "transform_param.crop_size"),
    "mirror": _only("*", "transform_param.mirror"),
    "rand_skip": _data_layers("rand_skip", ("data", "images")),
    "shuffle_images": _only("images", "image_data_param.shuffle"),
    "new_height": _only("images", "image_data_param.new_height"),
    "new_width": _only("images", "image_data_param.new_width"),
    "concat_dim": _only("concat", "concat_param.concat_dim"),
    "det_fg_threshold": _only("window_data", "window_data_param.fg_threshold"),
    "det_bg_threshold": _only("window_data", "window_data_param.bg_threshold"),
    "det_fg_fraction": _only("window_data", "window_data_param.fg_fraction"),
    "det_context_pad": _only("window_data", "window_data_param.context_pad"),
    "det_crop_mode": _only("window_data", "window_data_param.crop_mode"),
    "hdf5_output_param": _only("hdf5_output", "hdf5_output_param"),
}


def net_needs_v0_upgrade(net):
    return any(layer.HasField("layer") for layer in net.layers)


def upgrade_v0_net(net, source):
    """In place. Like Caffe, the result keeps only the V0 net's name, inputs, input_dim and force_backward."""
    upgraded = caffe_pb2.NetParameter(input=net.input, input_dim=net.input_dim)
    for field in ("name", "force_backward"):
        if net.HasField(field):
            setattr(upgraded, field, getattr(net, field))
    upgraded.layers.extend(_upgrade_v0_layer(layer, source) for layer in _fold_padding_layers(net, source))
    net.CopyFrom(upgraded)


def _fold_padding_layers(net, source):
    """Copies of the net's layers minus its "padding" layers, whose pad moves into the conv or pool they feed."""
    producers = dict.fromkeys(net.input)  # blob name -> the layer that last wrote it (None: a net input)
    kept = []
    for layer in net.layers:
        if layer.layer.type != "padding":
            kept.append(caffe_pb2.V1LayerParameter())
            kept[-1].CopyFrom(layer)
        for index, blob in enumerate(layer.bottom):
            if blob not in producers:
                raise ParseError(f"{source}: V0 layer '{layer.layer.name}': unknown bottom blob '{blob}'")
            padding = producers[blob]
            if padding is not None and padding.layer.type == "padding":
                _check_padding_consumer(layer, padding, source)
                kept[-1].layer.pad = padding.layer.pad
                kept[-1].bottom[index] = padding.bottom[0]
        for blob in layer.top:
            producers[blob] = layer
    return kept


def _check_padding_consumer(layer, padding, source):
    if layer.layer.type not in ("conv", "pool"):
        problem = f"is of type '{layer.layer.type}'; only conv and pool can absorb a padding layer"
    elif len(layer.bottom) != 1:
        problem = "takes a padded blob among several bottoms; only single-input layers can absorb padding"
    elif len(padding.bottom) != 1 or len(padding.top) != 1:
        problem = f"follows padding layer '{padding.layer.name}', which must have one bottom and one top"
    else:
        return
    raise ParseError(f"{source}: V0 layer '{layer.layer.name}' {problem}")


def _upgrade_v0_layer(old, source):
    new = caffe_pb2.V1LayerParameter(bottom=old.bottom, top=old.top)
    if not old.HasField("layer"):
        return new
    v0 = old.layer
    if v0.HasField("name"):
        new.name = v0.name
    if v0.HasField("type"):
        new.type = caffe_pb2.V1LayerParameter.LayerType.Value(_v1_type(v0, source))
    new.blobs.extend(v0.blobs)
    new.blobs_lr.extend(v0.blobs_lr)
    new.weight_decay.extend(v0.weight_decay)
    for field, targets in _V0_FIELDS.items():
        if v0.HasField(field):
            _move_field(v0, field, targets.get(v0.type, targets.get("*")), new, source)
    return new


def _v1_type(v0, source):
    if v0.type not in _V0_TYPES:
        raise ParseError(f"{source}: V0 layer '{v0.name}': unknown layer type '{v0.type}'")
    return _V0_TYPES[v0.type]


def _move_field(v0, field, path, new, source):
    """Set `path` (dotted, inside the V1 layer) to the V0 field's value; a field the type cannot take is dropped."""
    if path is None:
        # Caffe logs these and carries on with the rest of the net.
        log.error("%s: V0 layer '%s': field %s does not apply to type '%s'; dropped", source, v0.name, field, v0.type)
        return
    *parents, name = path.split(".")
    target = new
    for parent in parents:
        target = getattr(target, parent)
    value = getattr(v0, field)
    descriptor = target.DESCRIPTOR.fields_by_name[name]
    if descriptor.message_type:
        getattr(target, name).CopyFrom(value)
    elif descriptor.is_repeated:
        getattr(target, name).append(value)
    elif descriptor.enum_type:
        source_enum = v0.DESCRIPTOR.fields_by_name[field].enum_type
        setattr(target, name, descriptor.enum_type.values_by_name[source_enum.values_by_number[value].name].number)
    else:
        setattr(target, name, value)
