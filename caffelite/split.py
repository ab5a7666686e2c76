"""Step 2 of Net construction: a Split layer wherever one blob feeds several consumers (Caffe's naming)."""

from caffelite.errors import NetError
from caffelite.proto import caffe_pb2


def split_layer_name(layer_name, blob_name, top_index):
    return f"{blob_name}_{layer_name}_{top_index}_split"


def split_blob_name(layer_name, blob_name, top_index, split_index):
    return f"{split_layer_name(layer_name, blob_name, top_index)}_{split_index}"


def insert_splits(param, source="<net>"):
    """Return a copy of `param` where every top read by more than one consumer goes through a Split.

    A top with a nonzero loss_weight counts as one consumer too; its Split's first top carries the weight.
    """
    producer, consumers, loss_weights = _count_consumers(param, source)
    result = caffe_pb2.NetParameter()
    result.CopyFrom(param)
    del result.layer[:]
    next_split = {}
    for layer_index, layer in enumerate(param.layer):
        new_layer = result.layer.add()
        new_layer.CopyFrom(layer)
        for bottom_index, blob in enumerate(layer.bottom):
            top_key = producer[(layer_index, bottom_index)]
            if consumers[top_key] > 1:
                split_index = next_split.get(top_key, 0)
                next_split[top_key] = split_index + 1
                producer_name = param.layer[top_key[0]].name
                new_layer.bottom[bottom_index] = split_blob_name(producer_name, blob, top_key[1], split_index)
        for top_index, blob in enumerate(layer.top):
            top_key = (layer_index, top_index)
            if consumers.get(top_key, 0) > 1:
                weight = loss_weights.get(top_key, 0.0)
                result.layer.add().CopyFrom(_split_layer(layer.name, blob, top_index, consumers[top_key], weight))
                if weight:
                    del new_layer.loss_weight[:]
                    next_split[top_key] = next_split.get(top_key, 0) + 1
    return result


def _count_consumers(param, source):
    last_producer = {}
    producer = {}
    consumers = {}
    loss_weights = {}
    for layer_index, layer in enumerate(param.layer):
        for bottom_index, blob in enumerate(layer.bottom):
            if blob not in last_producer:
                raise NetError(
                    f"{source}: layer '{layer.name}' ({layer.type}): unknown bottom blob '{blob}' "
                    f"(bottom index {bottom_index})"
                )
            top_key = last_producer[blob]
            producer[(layer_index, bottom_index)] = top_key
            consumers[top_key] = consumers.get(top_key, 0) + 1
        for top_index, blob in enumerate(layer.top):
            last_producer[blob] = (layer_index, top_index)
        for top_index, weight in enumerate(layer.loss_weight[: len(layer.top)]):
            top_key = last_producer[layer.top[top_index]]
            loss_weights[top_key] = weight
            if weight:
                consumers[top_key] = consumers.get(top_key, 0) + 1
    return producer, consumers, loss_weights


def _split_layer(layer_name, blob_name, top_index, count, loss_weight):
    split = caffe_pb2.LayerParameter(name=split_layer_name(layer_name, blob_name, top_index), type="Split")
    split.bottom.append(blob_name)
    for index in range(count):
        split.top.append(split_blob_name(layer_name, blob_name, top_index, index))
        if loss_weight:
            split.loss_weight.append(loss_weight if index == 0 else 0.0)
    return split
