"""pycaffe's NetSpec: write a net as Python calls and get its NetParameter back.

    from caffelite import layers as L, params as P
    n = caffelite.NetSpec()
    n.data, n.label = L.Data(source="train_lmdb", backend=P.Data.LMDB, batch_size=64, ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20)
    n.to_proto()   # NetParameter; str() of it is the prototxt

`L.<Type>(*bottoms, **kwargs)` makes a LayerNode and returns its Top (a tuple of Tops when ntop > 1, the node itself
when ntop == 0). Nothing is checked against the layer registry: the node only records what the prototxt will say.
Keyword rules (pycaffe's):
  - `ntop=k` and `in_place=True` shape the node and never reach the proto;
  - a key ending in "param" is a LayerParameter field (`param=[...]`, `transform_param={...}`, `python_param={...}`);
  - any other key goes into the type's own `<type>_param` message when that message has such a field
    (`kernel_size` → convolution_param.kernel_size), else into LayerParameter (`loss_weight`, `include`, `name`);
  - lists fill repeated fields (a list of dicts adds one message per dict), a scalar given to a repeated field is a
    one-element list, a dict fills a message field by field, anything else is assigned.
Layer and top names come from NetSpec attribute names; unnamed ones are "<Type><k>" with one counter per type,
counted in the order to_proto meets them.
"""

from collections import Counter, OrderedDict

import numpy as np
from google.protobuf.message import Message

from caffelite.errors import CaffeliteError, NetError
from caffelite.proto import caffe_pb2

__all__ = [
    "LayerNode",
    "NetSpec",
    "NetSpecError",
    "NetSpecValueError",
    "Top",
    "assign_proto",
    "layer_parameter",
    "layers",
    "param_name_dict",
    "params",
    "to_proto",
]


class NetSpecError(NetError, AttributeError):
    """A NetSpec keyword, attribute or parameter name that the schema does not have."""


class NetSpecValueError(NetError, TypeError, ValueError):
    """A keyword value the field cannot hold (a string for a number, an unknown enum name, ...)."""


class NotATopError(CaffeliteError, TypeError):
    """A layer was given a bottom that is not a Top (often a whole tuple from an ntop > 1 layer)."""


def param_name_dict():
    """{layer type: its *_param field name without "_param"}, read from LayerParameter's message fields.

    The type comes from the field's message name ("PoolingParameter" → "Pooling"), so fields whose message serves
    several types (loss_param: LossParameter) give entries that are not layer types; that is harmless.
    """
    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields
    return {
        field.message_type.name.removesuffix("Parameter"): field.name.removesuffix("_param")
        for field in fields
        if field.name.endswith("_param") and field.message_type is not None
    }


# Types that read a message named after another type (Caffe's Deconvolution and Im2col use convolution_param).
# pycaffe has no entry for them, so its `L.Deconvolution(x, kernel_size=4)` fails at to_proto; here it works.
_SHARED_PARAM = {"Deconvolution": "convolution", "Im2col": "convolution"}


def assign_proto(proto, name, val):
    """Set field `name` of message `proto` from a Python value, recursively (the rules in the module docstring)."""
    field = getattr(proto, name)
    if isinstance(val, (tuple, np.ndarray)):
        val = list(val)
    repeated = hasattr(field, "extend")
    if repeated and not isinstance(val, list):
        val = [val]
    if isinstance(val, list):
        if not repeated:
            raise NetSpecError(f"{proto.DESCRIPTOR.name}.{name} holds one value, got a list")
        for item in val:
            if isinstance(item, dict):
                _fill_message(field.add(), item)
            elif isinstance(item, Message):
                field.add().CopyFrom(item)
            else:
                field.append(item)
    elif isinstance(val, dict):
        if not isinstance(field, Message):
            raise NetSpecError(f"{proto.DESCRIPTOR.name}.{name} is not a message, got a dict")
        _fill_message(field, val)
    elif isinstance(val, Message):
        field.CopyFrom(val)
    else:
        setattr(proto, name, val)


def _fill_message(message, values):
    for key, value in values.items():
        _check_field(message, key)
        assign_proto(message, key, value)


def _check_field(message, key):
    if key not in message.DESCRIPTOR.fields_by_name:
        known = ", ".join(sorted(message.DESCRIPTOR.fields_by_name))
        raise NetSpecError(f"{message.DESCRIPTOR.name} has no field '{key}' (its fields: {known})")


class Top:
    """Output `n` of layer node `fn`: what a layer call returns and what later layers take as a bottom."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter holding every layer this top depends on."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)

    def __repr__(self):
        return f"<Top {self.n} of {self.fn.type_name}>"


class LayerNode:
    """One layer as NetSpec records it (pycaffe calls it Function): type, bottoms as Tops, raw keyword params.

    `params` is the keyword dict as given, minus `ntop` and `in_place` (coord_map reads it directly).
    """

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):
                raise NotATopError(f"{type_name} input {index} is not a Top (type is {type(bottom)})")
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def __repr__(self):
        return f"<LayerNode {self.type_name} ({len(self.inputs)} bottoms, {self.ntop} tops)>"

    # -- naming: a NetSpec name when there is one, else "<Type><k>" ------------------------------
    def _top_name(self, top, names, autonames):
        if top not in names:
            names[top] = self._autoname(autonames)
        return names[top]

    def _layer_name(self, names, autonames):
        if self not in names:
            # A layer is named after its first top; only a top-less layer needs a name of its own.
            names[self] = self._top_name(self.tops[0], names, autonames) if self.tops else self._autoname(autonames)
        return names[self]

    def _autoname(self, autonames):
        autonames[self.type_name] += 1
        return f"{self.type_name}{autonames[self.type_name]}"

    # -- serialization ----------------------------------------------------------------------------
    def _to_proto(self, layers, names, autonames):
        """Add this node's LayerParameter to `layers` (node → proto, in dependency order), bottoms first."""
        if self in layers:
            return
        bottoms = []
        for bottom in self.inputs:
            bottom._to_proto(layers, names, autonames)
            bottoms.append(layers[bottom.fn].top[bottom.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name, bottom=bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._top_name(top, names, autonames) for top in self.tops)
        layer.name = self._layer_name(names, autonames)
        for key, value in self.params.items():
            target = self._target(layer, key)
            try:
                assign_proto(target, key, value)
            except NetSpecError as exc:
                raise NetSpecError(f"layer '{layer.name}' ({self.type_name}): {key}: {exc}") from None
            except (TypeError, ValueError) as exc:  # protobuf refusing the value's type or range
                raise NetSpecValueError(f"layer '{layer.name}' ({self.type_name}): {key}={value!r}: {exc}") from None
        layers[self] = layer

    def _target(self, layer, key):
        """The message `key` belongs in: the type's own *_param message when it has the field, else the layer."""
        short = _PARAM_NAMES.get(self.type_name) or _SHARED_PARAM.get(self.type_name)
        if short is not None and not key.endswith("param"):
            own = getattr(layer, short + "_param")
            if key in own.DESCRIPTOR.fields_by_name:
                return own
        if key not in layer.DESCRIPTOR.fields_by_name:
            where = f"LayerParameter or {short}_param" if short else "LayerParameter (the type has no *_param)"
            raise NetSpecError(f"layer '{layer.name}' ({self.type_name}): no field '{key}' in {where}")
        return layer


def layer_parameter(type_name, **kwargs):
    """One LayerParameter of `type_name` from keywords, by the rules above (no bottoms; tops named <Type>1, ...)."""
    layers = OrderedDict()
    LayerNode(type_name, [], kwargs)._to_proto(layers, {}, Counter())
    return layers.popitem()[1]


def to_proto(*tops):
    """A NetParameter with every layer needed to compute `tops` (Tops, or top-less LayerNodes), names generated."""
    layers = OrderedDict()
    autonames = Counter()
    for top in tops:
        top._to_proto(layers, {}, autonames)
    return caffe_pb2.NetParameter(layer=layers.values())


class NetSpec:
    """Tops assigned as attributes (or items) get the attribute name; `to_proto()` returns the whole net."""

    def __init__(self):
        object.__setattr__(self, "tops", OrderedDict())

    def __setattr__(self, name, value):
        if not isinstance(value, (Top, LayerNode)):
            hint = ""
            if isinstance(value, tuple):
                hint = " (a layer with ntop > 1 returns a tuple: unpack it, n.a, n.b = L.X(..., ntop=2))"
            raise NetSpecError(f"NetSpec.{name}: expected a Top or a top-less layer, got {type(value).__name__}{hint}")
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.__dict__["tops"][name]
        except KeyError:
            raise NetSpecError(f"NetSpec has no top '{name}'") from None

    def __setitem__(self, key, value):
        self.__setattr__(key, value)

    def __getitem__(self, key):
        return self.__getattr__(key)

    def to_proto(self):
        """A NetParameter holding every assigned top's layers, named after the attributes (others "<Type><k>")."""
        names = {value: name for name, value in self.tops.items()}
        autonames = Counter()
        layers = OrderedDict()
        for value in self.tops.values():
            value._to_proto(layers, names, autonames)
        return caffe_pb2.NetParameter(layer=layers.values())


class Layers:
    """`L.<Type>(*bottoms, **kwargs)`: a Top, a tuple of Tops (ntop > 1), or the LayerNode itself (ntop == 0)."""

    def __getattr__(self, type_name):
        if type_name.startswith("_"):  # keep copy/pickle/introspection probes from becoming layer types
            raise AttributeError(type_name)

        def make_layer(*bottoms, **kwargs):
            node = LayerNode(type_name, bottoms, kwargs)
            if node.ntop == 0:
                return node
            return node.tops[0] if node.ntop == 1 else node.tops

        make_layer.__name__ = type_name
        return make_layer


class Parameters:
    """`P.<Type>.<VALUE>`: enum values of `<Type>Parameter` (P.Pooling.MAX, P.Data.LMDB, P.Eltwise.SUM)."""

    def __getattr__(self, type_name):
        if type_name.startswith("_"):
            raise AttributeError(type_name)
        message = getattr(caffe_pb2, type_name + "Parameter", None)
        if message is None:
            raise NetSpecError(f"params.{type_name}: caffe.proto has no message {type_name}Parameter")
        return _EnumValues(message)


class _EnumValues:
    def __init__(self, message):
        self._message = message

    def __getattr__(self, value_name):
        if value_name.startswith("_"):
            raise AttributeError(value_name)
        try:
            return getattr(self._message, value_name)
        except AttributeError:
            descriptor = self._message.DESCRIPTOR
            known = sorted(v.name for enum in descriptor.enum_types for v in enum.values)
            message = f"{descriptor.name} has no enum value '{value_name}' (known: {', '.join(known)})"
            raise NetSpecError(message) from None


_PARAM_NAMES = param_name_dict()
layers = Layers()
params = Parameters()
