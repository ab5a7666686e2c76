"""Hypothesis strategies for the fuzz tests: mutated valid inputs, and net definitions made from the schema."""

from google.protobuf.descriptor import FieldDescriptor
from hypothesis import strategies as st

from caffelite.function import LAYERS
from caffelite.proto import caffe_pb2

# -- byte mutations of valid inputs -------------------------------------------------------------------
_OPERATIONS = ("flip", "truncate", "insert", "delete", "duplicate", "overwrite")
_EDGE_BYTES = [b"\x00", b"\xff", b"\x80", b"\x7f", b"\xff\xff\xff\xff\x0f", b"{", b"}", b'"', b"\n", b"-"]


def _mutate(data, edits):
    data = bytearray(data)
    for operation, position, payload in edits:
        at = position % (len(data) + 1)
        if operation == "flip" and data:
            data[at % len(data)] ^= 1 << (position % 8)
        elif operation == "truncate":
            del data[at:]
        elif operation == "insert":
            data[at:at] = payload
        elif operation == "delete":
            del data[at:at + len(payload) + 1]
        elif operation == "duplicate":
            data[at:at] = data[at:at + 16 * (len(payload) + 1)]
        elif operation == "overwrite":
            data[at:at + len(payload)] = payload
    return bytes(data)


def mutated(seeds):
    """A seed with a few random edits (or, now and then, random bytes)."""
    edit = st.tuples(st.sampled_from(_OPERATIONS), st.integers(0, 1 << 20),
                     st.one_of(st.sampled_from(_EDGE_BYTES), st.binary(max_size=8)))
    return st.one_of(
        st.builds(_mutate, st.sampled_from(seeds), st.lists(edit, min_size=1, max_size=6)),
        st.binary(max_size=64),
    )


# -- net definitions from the schema ------------------------------------------------------------------
_BLOBS = ["data", "label", "a", "b", "c"]
# Mostly small values (shapes stay tiny and fast), plus the edges: zero, negatives, beyond 32 bits.
_INTS = st.one_of(st.integers(-2, 6), st.sampled_from([0, 1, 2**31 - 1, 2**31, -2**31 - 1, 2**32 + 3]))
_FLOATS = st.one_of(st.floats(-4, 4, width=32), st.sampled_from(["inf", "-inf", "nan", "1e39", "0"]))
_STRINGS = st.one_of(st.sampled_from(_BLOBS + ["xavier", "gaussian", "constant", "", "SUM"]), st.text(max_size=6))
_FD = FieldDescriptor


def _value(field, depth):
    if field.type == _FD.TYPE_MESSAGE:
        return _fields(field.message_type, depth - 1).map(lambda body: "{ " + body + " }")
    if field.type == _FD.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.name for v in field.enum_type.values]), st.integers(-1, 9).map(str))
    if field.type == _FD.TYPE_BOOL:
        return st.sampled_from(["true", "false", "1", "2"])
    if field.type == _FD.TYPE_STRING:
        return _STRINGS.map(lambda text: '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    if field.type in (_FD.TYPE_FLOAT, _FD.TYPE_DOUBLE):
        return st.one_of(_FLOATS.map(str), _INTS.map(str))
    return _INTS.map(str)


def _fields(descriptor, depth):
    """Text of a few fields of `descriptor` (message fields only while depth lasts)."""
    fields = [f for f in descriptor.fields if depth > 0 or f.type != _FD.TYPE_MESSAGE]
    if not fields:
        return st.just("")
    entry = st.sampled_from(fields).flatmap(
        lambda f: _value(f, depth).map(lambda value: f"{f.name}{'' if value.startswith('{') else ':'} {value}"))
    return st.lists(entry, max_size=4).map(" ".join)


_PARAM_OF_TYPE = {}


def _parameter_field(type_name):
    """The LayerParameter field for a layer type's options (e.g. Convolution -> convolution_param)."""
    if not _PARAM_OF_TYPE:
        by_message = {}
        for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
            if field.type == _FD.TYPE_MESSAGE and field.name.endswith("_param"):
                by_message[field.name[:-len("_param")].replace("_", "")] = field
        for name in LAYERS.names():
            _PARAM_OF_TYPE[name] = by_message.get(name.lower())
    return _PARAM_OF_TYPE.get(type_name)


@st.composite
def layer_text(draw):
    type_name = draw(st.sampled_from([n for n in LAYERS.names() if n != "Python"]))
    bottoms = draw(st.lists(st.sampled_from(_BLOBS), max_size=3))
    tops = draw(st.lists(st.sampled_from(_BLOBS), max_size=2))
    parts = [f'name: "{type_name.lower()}{draw(st.integers(0, 9))}"', f'type: "{type_name}"']
    parts += [f'bottom: "{b}"' for b in bottoms] + [f'top: "{t}"' for t in tops]
    field = _parameter_field(type_name)
    if field is not None:
        parts.append(f"{field.name} {{ {draw(_fields(field.message_type, 2))} }}")
    if draw(st.booleans()):
        parts.append(draw(_fields(caffe_pb2.LayerParameter.DESCRIPTOR, 0)))
    return "layer { " + " ".join(parts) + " }"


@st.composite
def net_text(draw):
    """An Input layer of small shapes, then a few layers of any type wired by a small pool of blob names."""
    shapes = draw(st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=4), min_size=1, max_size=2))
    tops = " ".join(f'top: "{name}"' for name in _BLOBS[:len(shapes)])
    dims = " ".join("shape { " + " ".join(f"dim: {d}" for d in shape) + " }" for shape in shapes)
    layers = draw(st.lists(layer_text(), min_size=1, max_size=4))
    return (f'name: "fuzz" layer {{ name: "input" type: "Input" {tops} input_param {{ {dims} }} }} '
            + " ".join(layers)).encode()
