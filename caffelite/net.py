"""Net: a NetParameter built into Functions wired by blob name (Caffe's net.cpp, in four named steps)."""

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

import numpy as np

import caffelite.layers  # noqa: F401  (registers every layer type)
from caffelite import diagnostics
from caffelite.errors import CaffeliteError, NetError, ShapeError
from caffelite.function import LAYERS
from caffelite.io.binary import read_net, write_binary
from caffelite.io.blob import array_to_blobproto, blobproto_to_array, legacy_shape_matches
from caffelite.io.hdf5 import is_hdf5, read_weights_hdf5, write_weights_hdf5
from caffelite.io.prototxt import read_net_text
from caffelite.phase import PHASE_NAMES, TEST, TRAIN
from caffelite.proto import caffe_pb2
from caffelite.split import insert_splits
from caffelite.tensor import Tensor

log = logging.getLogger("caffelite")


@dataclass
class LayerSlot:
    """One built layer and how it is wired into the Net."""

    function: object
    param: caffe_pb2.LayerParameter
    bottom_names: list
    top_names: list
    bottom: list = field(default_factory=list)
    top: list = field(default_factory=list)
    bottom_need_backward: list = field(default_factory=list)
    loss_weights: list = field(default_factory=list)
    need_backward: bool = False


class Net:
    """pycaffe's Net: `Net(model_file, phase, level=0, stages=None, weights=None)` or legacy `Net(file, weights, phase)`.

    `model` may be a prototxt path or a caffe_pb2.NetParameter.
    """

    def __init__(self, model, *args, level=0, stages=None, weights=None, phase=None, dtype=np.float32):
        phase, weights = _constructor_args(args, phase, weights, model)
        if len(args) == 2:
            log.warning("Deprecated form Net(model, weights, phase); use Net('%s', %s, weights='%s')",
                        model, PHASE_NAMES[phase], weights)
        param = _load_model(model)
        self.source = str(model) if isinstance(model, (str, Path)) else "<NetParameter>"
        self.dtype = np.dtype(dtype)
        if phase is not None:  # else a NetParameter's own state (the solver's merged one) rules
            param.state.phase = phase
            param.state.level = level
            del param.state.stage[:]
            param.state.stage.extend(stages or [])
        self.phase = param.state.phase
        self.name = param.name
        self.debug_info = param.debug_info  # Caffe's per-layer statistics in the log (caffelite.diagnostics)
        # Step 1 and 2: which layers this state keeps, then a Split wherever a blob feeds several layers.
        self._param = insert_splits(filter_net(param), self.source)
        # Step 3: create every layer and its tops, set up, share params.
        self._build()
        # Step 4: which layers and bottoms need backward.
        self._mark_backward(self._param.force_backward)
        self._callbacks = {"before_forward": [], "after_forward": [], "before_backward": [], "after_backward": []}
        if weights:
            self.copy_from(weights)

    # -- building -------------------------------------------------------------------------------
    def _build(self):
        self.blobs = OrderedDict()
        self._slots = []
        self._need_grad = {}
        self._param_owners = []  # (slot index, param index, owner learnable index)
        self.learnable_params = []
        self.params_lr = []
        self.params_weight_decay = []
        self._has_lr, self._has_decay = [], []
        self._param_names = {}
        available = []
        for layer_param in self._param.layer:
            if not layer_param.HasField("phase"):
                layer_param.phase = self.phase
            self._slots.append(self._build_layer(layer_param, available))
        self.inputs = [name for slot in self._slots if slot.param.type == "Input" for name in slot.top_names]
        self.outputs = sorted(set(available))

    def _build_layer(self, layer_param, available):
        where = f"{self.source}: layer '{layer_param.name}' ({layer_param.type})"
        log.info("Creating layer %s", layer_param.name)
        try:
            function = LAYERS.get(layer_param.type)(layer_param, phase=self.phase, dtype=self.dtype)
        except CaffeliteError as error:
            raise NetError(f"{where}: {error}") from None
        slot = LayerSlot(function, layer_param, list(layer_param.bottom), list(layer_param.top))
        if layer_param.propagate_down and len(layer_param.propagate_down) != len(layer_param.bottom):
            raise NetError(f"{where}: propagate_down must be given once per bottom")
        for index, name in enumerate(slot.bottom_names):
            self._append_bottom(slot, index, name, available, where)
        self._append_tops(slot, available, where)
        for step, args in ((function.check_blob_counts, (len(slot.bottom), len(slot.top))),
                           (function.setup, (slot.bottom, slot.top)),
                           (function.reshape, (slot.bottom, slot.top))):
            self._run_layer_step(function, step, args)
        slot.loss_weights = self._loss_weights(slot, where)
        for tensor in slot.top:
            log.info("Top shape: %s", tensor.shape_string())
        slot.need_backward = any(self._need_grad[name] for name in slot.bottom_names)
        slot.need_backward |= self._append_params(slot, len(self._slots), where)
        if slot.need_backward:
            for name in slot.top_names:
                self._need_grad[name] = True
        return slot

    def _run_layer_step(self, function, step, args):
        """A CaffeliteError from a layer's own step gets the file (and the layer, if it did not say) in front."""
        try:
            step(*args)
        except CaffeliteError as error:
            message = str(error)
            if function.describe() not in message:
                message = f"{function.describe()}: {message}"
            raise type(error)(f"{self.source}: {message}") from error  # keeps a Python layer's traceback

    def _append_bottom(self, slot, index, name, available, where):
        if name not in available:
            raise NetError(f"{where}: unknown bottom blob '{name}' (bottom index {index})")
        available.remove(name)
        slot.bottom.append(self.blobs[name])
        propagate = slot.param.propagate_down
        slot.bottom_need_backward.append(bool(propagate[index]) if propagate else self._need_grad[name])

    def _append_tops(self, slot, available, where):
        function = slot.function
        wanted = len(slot.top_names)
        if function.is_loss and wanted == 0:
            wanted = max(function.min_top or 0, function.exact_num_top or 0, 1)
        for index in range(wanted):
            if index >= len(slot.top_names):
                slot.top_names.append(f"(automatic {slot.param.name} {index})")
            name = slot.top_names[index]
            in_place = index < len(slot.bottom_names) and slot.bottom_names[index] == name
            if not in_place and name in self.blobs:
                raise NetError(f"{where}: top blob '{name}' produced by multiple sources")
            if not in_place:
                self.blobs[name] = Tensor(dtype=self.dtype)
                self._need_grad[name] = False
            slot.top.append(self.blobs[name])
            available.append(name)

    def _loss_weights(self, slot, where):
        weights = list(slot.param.loss_weight)
        if not weights and slot.function.is_loss:
            weights = [1.0]
        if len(weights) > len(slot.top):
            raise NetError(f"{where}: {len(weights)} loss_weight values for {len(slot.top)} tops")
        return [(index, w) for index, w in enumerate(weights) if w != 0]

    def _append_params(self, slot, slot_index, where):
        """Record the layer's params (sharing by ParamSpec name); True if any has a nonzero lr_mult."""
        specs = slot.param.param
        params = slot.function.params
        if len(specs) > len(params):
            raise NetError(f"{where}: {len(specs)} param specs for {len(params)} learnable blobs")
        wants_grad = False
        for index, tensor in enumerate(params):
            spec = specs[index] if index < len(specs) else caffe_pb2.ParamSpec()
            wants_grad |= spec.lr_mult != 0
            if spec.name and spec.name in self._param_names:
                self._share_param(tensor, spec, self._param_names[spec.name], where)
                continue
            if spec.name:
                self._param_names[spec.name] = len(self.learnable_params)
            self.learnable_params.append(tensor)
            self.params_lr.append(spec.lr_mult)
            self.params_weight_decay.append(spec.decay_mult)
            self._has_lr.append(spec.HasField("lr_mult"))
            self._has_decay.append(spec.HasField("decay_mult"))
        return wants_grad

    def _share_param(self, tensor, spec, owner_index, where):
        owner = self.learnable_params[owner_index]
        permissive = spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE
        fits = owner.count == tensor.count if permissive else owner.shape == tensor.shape
        if not fits:
            raise ShapeError(
                f"{where}: cannot share param '{spec.name}': owner shape {owner.shape_string()}, "
                f"this layer expects {tensor.shape_string()}"
            )
        for attribute, has, values in (
            ("lr_mult", self._has_lr, self.params_lr),
            ("decay_mult", self._has_decay, self.params_weight_decay),
        ):
            if not spec.HasField(attribute):
                continue
            if has[owner_index] and values[owner_index] != getattr(spec, attribute):
                raise NetError(f"{where}: shared param '{spec.name}' has a mismatched {attribute}")
            has[owner_index] = True
            values[owner_index] = getattr(spec, attribute)
        # Same arrays: both layers read the owner's values and add into the owner's grad.
        tensor.data = owner.data.reshape(tensor.shape)
        tensor.grad = owner.grad.reshape(tensor.shape)

    def _mark_backward(self, force_backward):
        """Caffe's pruning: only layers under a loss, and not cut off by propagate_down, run backward."""
        under_loss, skip = set(), set()
        for slot in reversed(self._slots):
            tops = slot.top_names
            contributes = bool(slot.loss_weights) or any(name in under_loss for name in tops)
            all_skipped = all(name in skip for name in tops) if tops else True
            if slot.need_backward and all_skipped:
                slot.need_backward = False
                slot.bottom_need_backward = [False] * len(slot.bottom)
            if not contributes:
                slot.need_backward = False
            for index, name in enumerate(slot.bottom_names):
                if contributes:
                    under_loss.add(name)
                else:
                    slot.bottom_need_backward[index] = False
                if not slot.bottom_need_backward[index]:
                    skip.add(name)
        if force_backward:
            for slot in self._slots:
                slot.need_backward = True
                slot.bottom_need_backward = [
                    need or slot.function.allow_force_backward(index)
                    for index, need in enumerate(slot.bottom_need_backward)
                ]
        for slot in self._slots:
            slot.function.need_backward = slot.need_backward

    # -- pycaffe's views ------------------------------------------------------------------------
    @property
    def layers(self):
        return [slot.function for slot in self._slots]

    @property
    def _layer_names(self):
        return [slot.param.name for slot in self._slots]

    @property
    def _blob_names(self):
        return list(self.blobs)

    @property
    def _blobs(self):
        return list(self.blobs.values())

    @property
    def _blob_loss_weights(self):
        return list(self.blob_loss_weights.values())

    @property
    def _inputs(self):
        """Indices into `_blobs` of the inputs (pycaffe's `net._inputs`)."""
        return [self._blob_names.index(name) for name in self.inputs]

    @property
    def _outputs(self):
        return [self._blob_names.index(name) for name in self.outputs]

    def _top_ids(self, layer_index):
        names = self._blob_names
        return [names.index(name) for name in self._slots[layer_index].top_names]

    def _bottom_ids(self, layer_index):
        names = self._blob_names
        return [names.index(name) for name in self._slots[layer_index].bottom_names]

    @property
    def layer_dict(self):
        return OrderedDict((slot.param.name, slot.function) for slot in self._slots)

    @property
    def params(self):
        return OrderedDict(
            (slot.param.name, slot.function.params) for slot in self._slots if slot.function.params
        )

    @property
    def top_names(self):
        return OrderedDict((slot.param.name, list(slot.top_names)) for slot in self._slots)

    @property
    def bottom_names(self):
        return OrderedDict((slot.param.name, list(slot.bottom_names)) for slot in self._slots)

    @property
    def blob_loss_weights(self):
        weights = OrderedDict((name, 0.0) for name in self.blobs)
        for slot in self._slots:
            for index, weight in slot.loss_weights:
                weights[slot.top_names[index]] = weight
        return weights

    def layer_need_backward(self, name):
        return self._slots[self._layer_index(name)].need_backward

    def _layer_index(self, name):
        for index, slot in enumerate(self._slots):
            if slot.param.name == name:
                return index
        raise NetError(f"{self.source}: no layer named '{name}'")

    # -- running --------------------------------------------------------------------------------
    def forward_range(self, start=0, end=None):
        """Run layers start..end (inclusive) and return the weighted loss they produce (Caffe's ForwardFromTo)."""
        end = len(self._slots) - 1 if end is None else end
        loss = 0.0
        for index in range(start, end + 1):
            slot = self._slots[index]
            self._run_callbacks("before_forward", index)
            slot.function.reshape(slot.bottom, slot.top)
            slot.function.forward(slot.bottom, slot.top)
            for top_index, weight in slot.loss_weights:
                loss += weight * float(np.sum(slot.top[top_index].data, dtype=np.float64))
            if self.debug_info:
                diagnostics.log_forward(self, index)
            self._run_callbacks("after_forward", index)
        return loss

    def backward_range(self, start=None, end=0):
        """Backward through layers start..end (start >= end); loss tops are seeded with their weights."""
        start = len(self._slots) - 1 if start is None else start
        for index in range(start, end - 1, -1):
            slot = self._slots[index]
            self._run_callbacks("before_backward", index)
            if slot.need_backward:
                for top_index, weight in slot.loss_weights:
                    slot.top[top_index].grad[...] = weight
                slot.function.backward(slot.top, slot.bottom_need_backward, slot.bottom)
                if self.debug_info:
                    diagnostics.log_backward(self, index)
            self._run_callbacks("after_backward", index)
        if self.debug_info and start == len(self._slots) - 1 and end == 0:
            diagnostics.log_norms(self)  # after a whole backward, as Caffe's Backward()

    # pycaffe's low-level names for the two ranges
    _forward = forward_range
    _backward = backward_range

    def forward_backward(self):
        loss = self.forward_range()
        self.backward_range()
        return loss

    def forward(self, blobs=None, start=None, end=None, **inputs):
        """pycaffe's forward: run layers `start`..`end` (names, inclusive) and return {blob name: data array}.

        Inputs given by name are copied in first; if any is given, every input must be, each with the blob's
        batch size. The result holds the outputs (or `end`'s tops) plus the blobs named in `blobs`; its arrays
        are the blobs' own, overwritten by the next pass.
        """
        self._fill(inputs, self.inputs, "input", "data")
        start_index = self._layer_index(start) if start is not None else 0
        end_index = self._layer_index(end) if end is not None else len(self._slots) - 1
        self.forward_range(start_index, end_index)
        names = self._slots[end_index].top_names if end is not None else self.outputs
        return {name: self.blobs[name].data for name in _unique(names, blobs, self)}

    def backward(self, diffs=None, start=None, end=None, **top_diffs):
        """pycaffe's backward: from layer `start` down to `end` (names, inclusive); returns {blob name: diff array}.

        Diffs given by output name are copied in first (all outputs, each batch sized); without them the loss
        tops are seeded with their loss weights. The result holds the inputs' diffs (or `end`'s bottoms') plus
        the blobs named in `diffs`.
        """
        self._fill(top_diffs, self.outputs, "output", "grad")
        start_index = self._layer_index(start) if start is not None else len(self._slots) - 1
        end_index = self._layer_index(end) if end is not None else 0
        self.backward_range(start_index, end_index)
        names = self._slots[end_index].bottom_names if end is not None else self.inputs
        return {name: self.blobs[name].grad for name in _unique(names, diffs, self)}

    def forward_all(self, blobs=None, **inputs):
        """Forward arrays of any length in batches of the net's batch size; returns {name: array of all items}.

        The last batch is padded with zeros and the padding dropped from the results. Without inputs, one pass
        over what the data layers produce.
        """
        names = _unique(self.outputs, blobs, self)
        if not inputs:
            outs = self.forward(blobs=blobs)
            return {name: outs[name].copy() for name in names}
        collected = {name: [] for name in names}
        for batch in self._batch(inputs):
            outs = self.forward(blobs=blobs, **batch)
            for name in names:
                collected[name].append(outs[name].copy())
        return _joined(collected, self._padding(inputs))

    def forward_backward_all(self, blobs=None, diffs=None, **arrays):
        """forward_all and backward together: inputs and output diffs by name, batched and padded alike.

        Returns ({name: data of all items}, {name: diff of all items}). A side not given (no inputs, or no
        output diffs) runs on what the net holds: the data layers' batches, the loss weights.
        """
        unknown = sorted(set(arrays) - set(self.inputs) - set(self.outputs))
        if unknown:
            raise NetError(f"{self.source}: {', '.join(map(repr, unknown))} are neither inputs nor outputs of this net")
        out_names = _unique(self.outputs, blobs, self)
        diff_names = _unique(self.inputs, diffs, self)
        outs = {name: [] for name in out_names}
        grads = {name: [] for name in diff_names}
        forward_batches = self._batch({name: arrays[name] for name in self.inputs if name in arrays})
        backward_batches = self._batch({name: arrays[name] for name in self.outputs if name in arrays})
        batches = zip_longest(forward_batches, backward_batches, fillvalue={}) if arrays else [({}, {})]
        for forward_batch, backward_batch in batches:
            batch_outs = self.forward(blobs=blobs, **forward_batch)
            batch_grads = self.backward(diffs=diffs, **backward_batch)
            for name in out_names:
                outs[name].append(batch_outs[name].copy())
            for name in diff_names:
                grads[name].append(batch_grads[name].copy())
        pad = self._padding(arrays) if arrays else 0
        return _joined(outs, pad), _joined(grads, pad)

    def _batch(self, arrays):
        """Yield {name: batch} slices of `arrays` (same length each) in the net's batch size, the first blob's
        first dimension; the last batch is padded with zeros. Nothing when `arrays` is empty."""
        if not arrays:
            return
        arrays = {name: np.asarray(array) for name, array in arrays.items()}
        count = _item_count(arrays)
        lengths = {name: len(array) for name, array in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ShapeError(f"{self.source}: arrays to batch must have one length, got {lengths}")
        batch_size = self._batch_size()
        for begin in range(0, count - count % batch_size, batch_size):
            yield {name: array[begin : begin + batch_size] for name, array in arrays.items()}
        remainder = count % batch_size
        if remainder:
            yield {
                name: np.concatenate(
                    [array[count - remainder :], np.zeros((batch_size - remainder,) + array.shape[1:], array.dtype)]
                )
                for name, array in arrays.items()
            }

    def _batch_size(self):
        return next(iter(self.blobs.values())).shape[0]

    def _padding(self, arrays):
        """How many zero items `_batch` adds to fill the last batch."""
        return -_item_count(arrays) % self._batch_size()

    # -- callbacks (pycaffe's net.before_forward(f) ...: f(layer_index) around each layer) --------------
    def before_forward(self, callback):
        self._callbacks["before_forward"].append(callback)

    def after_forward(self, callback):
        self._callbacks["after_forward"].append(callback)

    def before_backward(self, callback):
        self._callbacks["before_backward"].append(callback)

    def after_backward(self, callback):
        self._callbacks["after_backward"].append(callback)

    def _run_callbacks(self, event, layer_index):
        for callback in self._callbacks[event]:
            callback(layer_index)

    def _fill(self, given, allowed, kind, attribute):
        """Check, then copy, arrays given by blob name into `attribute` (data or grad) of those blobs.

        Unknown names and wrong shapes are refused before anything is copied; so is giving only some of them.
        """
        if not given:
            return
        for name in given:
            if name not in allowed:
                raise NetError(f"{self.source}: '{name}' is not an {kind} blob (the {kind}s: {', '.join(allowed)})")
        arrays = {name: np.asarray(array) for name, array in given.items()}
        for name, array in arrays.items():
            _check_fits(getattr(self.blobs[name], attribute), array, name)
        missing = [name for name in allowed if name not in given]
        if missing:
            raise NetError(
                f"{self.source}: give every {kind} or none: missing {', '.join(map(repr, missing))}"
            )
        for name, array in arrays.items():
            getattr(self.blobs[name], attribute)[...] = array

    def set_input_arrays(self, data, labels):
        """pycaffe's: hand arrays to the MemoryData layer that must come first in the net."""
        first = self._slots[0].function if self._slots else None
        if first is None or first.type != "MemoryData":
            raise NetError(f"{self.source}: set_input_arrays may only be called if the first layer is a MemoryData layer")
        first.set_input_arrays(data, labels)

    def reshape(self):
        for slot in self._slots:
            slot.function.reshape(slot.bottom, slot.top)

    def clear_param_diffs(self):
        for tensor in self.learnable_params:
            tensor.grad[...] = 0

    # -- weights --------------------------------------------------------------------------------
    def to_proto(self, write_diff=False):
        """The NetParameter with every layer's current blobs (Caffe's Net::ToProto); diffs too if `write_diff`."""
        param = caffe_pb2.NetParameter()
        param.name = self.name
        for slot in self._slots:
            layer = param.layer.add()
            layer.CopyFrom(slot.param)
            del layer.blobs[:]
            layer.blobs.extend(
                array_to_blobproto(tensor.data, tensor.grad if write_diff else None)
                for tensor in slot.function.params
            )
        return param

    def save(self, path):
        """Write the weights as a binary NetParameter (.caffemodel) that Caffe reads; atomic."""
        write_binary(self.to_proto(), path)

    def save_hdf5(self, path, write_diff=False):
        """Write the weights (and the diffs if `write_diff`) in Caffe's HDF5 layout (Net::ToHDF5); atomic."""
        owners = {id(tensor) for tensor in self.learnable_params}
        layers = [
            (slot.param.name, [(t.data if id(t) in owners else None, t.grad) for t in slot.function.params])
            for slot in self._slots
        ]
        write_weights_hdf5(path, layers, write_diff)

    def load_hdf5(self, path):
        """Caffe's CopyTrainedLayersFromHDF5: /data/<layer>/<i> into the layers of the same name.

        A source layer may hold fewer blobs than its target only where the missing ones are shared from
        another layer; shapes must be equal (no legacy 4-D alignment in HDF5).
        """
        label = str(path)
        trained = read_weights_hdf5(path)
        owners = {id(tensor) for tensor in self.learnable_params}
        by_name = {}
        for slot in self._slots:
            by_name.setdefault(slot.param.name, slot)
        for name, blobs in trained.items():
            slot = by_name.get(name)
            if slot is None:
                log.info("Ignoring source layer %s", name)
                continue
            targets = slot.function.params
            if len(blobs) > len(targets) or any(index >= len(targets) for index in blobs):
                raise ShapeError(
                    f"{label}: layer '{name}' has {len(blobs)} blobs; this net's layer '{name}' "
                    f"({slot.param.type}) has {len(targets)}"
                )
            for index, tensor in enumerate(targets):
                if index not in blobs:
                    if id(tensor) in owners:
                        raise ShapeError(f"{label}: layer '{name}' has no blob {index}, which this net's layer "
                                         f"'{name}' ({slot.param.type}) needs")
                    continue  # shared: its owner's blob is (or will be) loaded
                source = blobs[index]
                if source.shape != tensor.shape:
                    raise ShapeError(
                        f"{label}: cannot load param {index} of layer '{name}' from HDF5; shape mismatch. "
                        f"Source shape is {source.shape}; target shape is {tensor.shape}."
                    )
                tensor.data[...] = source

    def copy_from(self, source):
        """Caffe's CopyTrainedLayersFrom: match layers by name, ignore unknown ones, require matching shapes.

        `source`: a path to a .caffemodel or an HDF5 weights file (or several, comma separated) or a
        caffe_pb2.NetParameter. A file is read as HDF5 when it carries the HDF5 signature, whatever its name.
        """
        if isinstance(source, (str, Path)) and "," in str(source):
            for part in str(source).split(","):
                self.copy_from(part)
            return
        if isinstance(source, (str, Path)) and is_hdf5(source):
            self.load_hdf5(source)
            return
        trained = source if isinstance(source, caffe_pb2.NetParameter) else read_net(source)
        label = source if isinstance(source, (str, Path)) else "<NetParameter>"
        by_name = {}
        for slot in self._slots:
            by_name.setdefault(slot.param.name, slot)
        for layer in trained.layer:
            slot = by_name.get(layer.name)
            if slot is None:
                log.info("Ignoring source layer %s", layer.name)
                continue
            self._copy_layer(slot, layer, label)

    @staticmethod
    def _copy_layer(slot, layer, label):
        targets = slot.function.params
        if len(targets) != len(layer.blobs):
            raise ShapeError(
                f"{label}: layer '{layer.name}' has {len(layer.blobs)} blobs; this net's layer "
                f"'{layer.name}' ({slot.param.type}) has {len(targets)}"
            )
        for index, (tensor, blob) in enumerate(zip(targets, layer.blobs)):
            source = blobproto_to_array(blob)
            if not legacy_shape_matches(blob, tensor.shape):
                raise ShapeError(
                    f"{label}: cannot copy param {index} weights from layer '{layer.name}'; shape mismatch. "
                    f"Source param shape is {source.shape}; target param shape is {tensor.shape}. To learn "
                    "this layer's parameters from scratch rather than copying from a saved net, rename the layer."
                )
            tensor.data[...] = source.reshape(tensor.shape)

    def share_with(self, other):
        """Use `other`'s param arrays in the layers of the same name (Caffe's ShareTrainedLayersWith)."""
        theirs = {name: function for name, function in zip(other._layer_names, other.layers)}
        for slot in self._slots:
            source = theirs.get(slot.param.name)
            if source is None or not source.params:
                continue
            if len(source.params) != len(slot.function.params):
                raise ShapeError(f"cannot share layer '{slot.param.name}': param counts differ")
            for mine, owner in zip(slot.function.params, source.params):
                if mine.shape != owner.shape:
                    raise ShapeError(
                        f"cannot share layer '{slot.param.name}': shapes {owner.shape} and {mine.shape} differ"
                    )
                mine.data, mine.grad = owner.data, owner.grad

    def __repr__(self):
        return f"Net('{self.name}', {PHASE_NAMES[self.phase]}, {len(self._slots)} layers)"


def _unique(names, extra, net):
    """`names` then `extra`, each once; an unknown extra name is an error naming it."""
    for name in extra or []:
        if name not in net.blobs:
            raise NetError(f"{net.source}: no blob named '{name}'")
    return list(dict.fromkeys(list(names) + list(extra or [])))


def _item_count(arrays):
    return len(next(iter(arrays.values())))


def _joined(parts, pad):
    """Per-batch arrays joined along the batch axis, without the last `pad` items (the padding).

    A scalar blob (a loss) has no batch axis: it comes back as one value per batch.
    """
    joined = {}
    for name, batches in parts.items():
        if batches[0].ndim == 0:
            joined[name] = np.stack(batches)
            continue
        whole = np.concatenate(batches)
        joined[name] = whole[: len(whole) - pad]
    return joined


def _check_fits(target, array, name):
    """pycaffe's rule: the array has the blob's batch size (first dimension), and its values fit the blob."""
    batch = array.shape[0] if array.ndim else None
    if target.ndim and batch != target.shape[0]:
        raise ShapeError(
            f"blob '{name}' has batch size {target.shape[0]} (shape {target.shape}); "
            f"got an array of shape {array.shape}"
        )
    try:
        np.broadcast_to(array, target.shape)
    except ValueError:
        raise ShapeError(f"blob '{name}' has shape {target.shape}; got an array of shape {array.shape}") from None


def filter_net(param):
    """Step 1: keep the layers whose include/exclude rules match the net's state."""
    kept = caffe_pb2.NetParameter()
    kept.CopyFrom(param)
    del kept.layer[:]
    for layer in param.layer:
        if layer.include and layer.exclude:
            raise NetError(f"layer '{layer.name}': specify include rules or exclude rules, not both")
        included = not layer.include
        if any(state_meets_rule(param.state, rule) for rule in layer.exclude):
            included = False
        if any(state_meets_rule(param.state, rule) for rule in layer.include):
            included = True
        if included:
            kept.layer.add().CopyFrom(layer)
    return kept


def state_meets_rule(state, rule):
    """A NetStateRule matches when phase, level range, stages and not_stages all agree with the state."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    return all(s in stages for s in rule.stage) and not any(s in stages for s in rule.not_stage)


def _constructor_args(args, phase, weights, model):
    """Accept pycaffe's Net(file, phase) and the legacy Net(file, weights, phase)."""
    if len(args) == 1:
        phase = args[0]
    elif len(args) == 2:
        weights, phase = args
    elif args:
        raise TypeError("Net(model, phase) or Net(model, weights, phase)")
    if phase is None and isinstance(model, caffe_pb2.NetParameter):
        return None, weights
    if phase not in (TRAIN, TEST):
        raise CaffeliteError(f"phase must be caffelite.TRAIN or caffelite.TEST, got {phase!r}")
    return phase, weights


def _load_model(model):
    if isinstance(model, caffe_pb2.NetParameter):
        param = caffe_pb2.NetParameter()
        param.CopyFrom(model)
        return param
    return read_net_text(model)
