"""Binary protobuf files: .caffemodel (NetParameter), .solverstate (SolverState), and atomic writes."""

import os
import re

from google.protobuf.message import DecodeError

from caffelite.errors import FileFormatError
from caffelite.io.files import atomic_write, read_bytes
from caffelite.io.prototxt import parse_text
from caffelite.io.upgrade import upgrade_net
from caffelite.proto import caffe_pb2

# Control characters that never occur in a prototxt but always do in a serialized NetParameter
# (its field tags 0x12 and 0x1a, little-endian floats full of zero bytes).
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f]")


def parse_binary(data, message_class, filename="<bytes>"):
    """A `message_class` decoded from serialized `data`; FileFormatError naming `filename` if it is not one."""
    message = message_class()
    kind = message_class.DESCRIPTOR.name
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise FileFormatError(f"{filename}: not a binary {kind} (truncated or corrupt)") from None
    if data and not message.ListFields():
        raise FileFormatError(f"{filename}: not a binary {kind} (its {len(data)} bytes hold no {kind} field)")
    if not message.IsInitialized():
        missing = ", ".join(message.FindInitializationErrors())
        raise FileFormatError(f"{filename}: binary {kind} lacks required field(s): {missing}")
    return message


def read_binary(path, message_class):
    """A `message_class` read from the binary protobuf file at `path`."""
    return parse_binary(read_bytes(path), message_class, filename=os.fspath(path))


def read_caffemodel(path):
    """The NetParameter of a binary .caffemodel, upgraded to the current format (V1 blobs move to V2 layers)."""
    return upgrade_net(read_binary(path, caffe_pb2.NetParameter), source=os.fspath(path))


def read_net(path):
    """An upgraded NetParameter from weights or a definition in either encoding.

    A `.caffemodel` is read as binary; any other file as text, unless it holds bytes no text file has
    (Caffe writes weights in binary whatever the file is called).
    """
    name = os.fspath(path)
    data = read_bytes(path)
    if name.endswith(".caffemodel") or _BINARY_BYTES.search(data, 0, 4096):
        net = parse_binary(data, caffe_pb2.NetParameter, filename=name)
    else:
        net = parse_text(data, caffe_pb2.NetParameter(), filename=name)
    return upgrade_net(net, source=name)


def write_binary(message, path):
    """Serialize `message` to `path` atomically: a failed write leaves any previous file untouched."""
    atomic_write(path, message.SerializeToString())


def read_solverstate(path):
    """The SolverState of a binary .solverstate file."""
    return read_binary(path, caffe_pb2.SolverState)
