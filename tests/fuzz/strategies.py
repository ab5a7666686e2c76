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
# Drawn with a hypothesis-controlled random.Random: generating a net field by field with hypothesis's own
# strategies costs ten times the Net builder's work, and the builder is what is being tested.
_BLOBS = ["data", "label", "a", "b", "c"]
_EDGE_INTS = [0, 1, 2**31 - 1, 2**31, -2**31 - 1, 2**32 + 3]
_EDGE_FLOATS = ["inf", "-inf", "nan", "1e39", "0"]
_STRINGS = _BLOBS + ["xavier", "gaussian", "constant", "", "SUM", 'quote"d', "back\\slash"]
_FD = FieldDescriptor


def _int(rnd):
    # Mostly small values (shapes stay tiny and fast), sometimes the edges: zero, negatives, beyond 32 bits.
    return rnd.choice(_EDGE_INTS) if rnd.random() < 0.1 else rnd.randint(-2, 6)


def _value(field, depth, rnd):
    if field.type == _FD.TYPE_MESSAGE:
        return "{ " + _fields(field.message_type, depth - 1, rnd) + " }"
    if field.type == _FD.TYPE_ENUM:
        return rnd.choice([v.name for v in field.enum_type.values]) if rnd.random() < 0.8 else str(rnd.randint(-1, 9))
    if field.type == _FD.TYPE_BOOL:
        return rnd.choice(["true", "false", "1", "2"])
    if field.type == _FD.TYPE_STRING:
        return '"' + rnd.choice(_STRINGS).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if field.type in (_FD.TYPE_FLOAT, _FD.TYPE_DOUBLE):
        roll = rnd.random()
        return rnd.choice(_EDGE_FLOATS) if roll < 0.1 else str(_int(rnd)) if roll < 0.4 else repr(rnd.uniform(-4, 4))
    return str(_int(rnd))


def _fields(descriptor, depth, rnd):
    """Text of up to four fields of `descriptor` (message fields only while depth lasts)."""
    fields = [f for f in descriptor.fields if depth > 0 or f.type != _FD.TYPE_MESSAGE]
    entries = []
    for _ in range(rnd.randint(0, 4) if fields else 0):
        field = rnd.choice(fields)
        value = _value(field, depth, rnd)
        entries.append(f"{field.name}{'' if value.startswith('{') else ':'} {value}")
    return " ".join(entries)


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


def _layer(rnd):
    type_name = rnd.choice([n for n in LAYERS.names() if n != "Python"])
    parts = [f'name: "{type_name.lower()}{rnd.randint(0, 9)}"', f'type: "{type_name}"']
    parts += [f'bottom: "{rnd.choice(_BLOBS)}"' for _ in range(rnd.randint(0, 3))]
    parts += [f'top: "{rnd.choice(_BLOBS)}"' for _ in range(rnd.randint(0, 2))]
    field = _parameter_field(type_name)
    if field is not None:
        parts.append(f"{field.name} {{ {_fields(field.message_type, 2, rnd)} }}")
    if rnd.random() < 0.5:
        parts.append(_fields(caffe_pb2.LayerParameter.DESCRIPTOR, 0, rnd))
    return "layer { " + " ".join(parts) + " }"


def _net(rnd):
    """An Input layer of small shapes, then a few layers of any type wired by a small pool of blob names."""
    shapes = [[rnd.randint(0, 5) for _ in range(rnd.randint(1, 4))] for _ in range(rnd.randint(1, 2))]
    tops = " ".join(f'top: "{name}"' for name in _BLOBS[:len(shapes)])
    dims = " ".join("shape { " + " ".join(f"dim: {d}" for d in shape) + " }" for shape in shapes)
    layers = " ".join(_layer(rnd) for _ in range(rnd.randint(1, 4)))
    return f'name: "fuzz" layer {{ name: "input" type: "Input" {tops} input_param {{ {dims} }} }} {layers}'.encode()


def net_text():
    """Net definitions generated from the schema (see `_net`)."""
    return st.randoms(use_true_random=False).map(_net)
