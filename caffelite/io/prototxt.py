"""Protobuf text format (prototxt): parsing with file:line:column errors, nets and solvers read and upgraded."""

import logging
import os
import re

from google.protobuf import text_format

from caffelite.errors import ParseError
from caffelite.io.files import atomic_write, read_bytes
from caffelite.io.upgrade import upgrade_net, upgrade_snapshot_prefix, upgrade_solver
from caffelite.proto import caffe_pb2

log = logging.getLogger("caffelite")

# A prototxt is written by hand or by a tool describing a model; text this large is not one, and
# protobuf's pure-Python text parser would take many minutes on it.
MAX_TEXT_BYTES = 256 * 2**20

_LOCATION_PREFIX = re.compile(r"^\d+(?::\d+)? : ")
_QUALIFIED_TYPE = re.compile(r'(?:Message|Enum) type "caffe\.([\w.]+)"')


def parse_text(text, message, filename="<string>"):
    """Parse prototxt `text` (str or bytes) into `message` and return it; errors read `file:line:column: what`."""
    if isinstance(text, bytes):
        text = _decode(text, filename)
    if len(text) > MAX_TEXT_BYTES:
        raise ParseError(f"{filename}: {len(text)} characters is too large for a prototxt (limit {MAX_TEXT_BYTES})")
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ParseError(_describe(exc, text, filename)) from None
    if not message.IsInitialized():
        missing = ", ".join(message.FindInitializationErrors())
        raise ParseError(f"{filename}: missing required field(s): {missing}")
    return message


def read_text(path, message):
    """Parse the prototxt file at `path` into `message` (no upgrade) and return it."""
    return parse_text(read_bytes(path, MAX_TEXT_BYTES), message, filename=os.fspath(path))


def read_net_text(path):
    """A NetParameter from a prototxt file, upgraded to the current format as Caffe does on every read."""
    return upgrade_net(read_text(path, caffe_pb2.NetParameter()), source=os.fspath(path))


def read_solver_text(path):
    """A SolverParameter from a prototxt file, upgraded, with Caffe's default snapshot_prefix rules applied."""
    solver = upgrade_solver(read_text(path, caffe_pb2.SolverParameter()), source=os.fspath(path))
    return upgrade_snapshot_prefix(solver, os.fspath(path))


def write_text(message, path):
    """Write `message` as prototxt to `path`, atomically."""
    atomic_write(path, text_format.MessageToString(message).encode("utf-8"))


def _decode(data, filename):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Caffe reads bytes and skips comments unseen; files with comments in a legacy encoding (GBK, Latin-1)
        # are common, so they are read with a warning rather than refused.
        line = data.count(b"\n", 0, exc.start) + 1
        log.warning("%s:%d: not UTF-8 text; undecodable bytes replaced by U+FFFD", filename, line)
        return data.decode("utf-8", errors="replace")


def _describe(exc, text, filename):
    """`file:line:column: what` from protobuf's error, without its location prefix, echoed line or package name."""
    line, column = exc.GetLine(), exc.GetColumn()
    what = _LOCATION_PREFIX.sub("", str(exc), count=1)
    lines = text.split("\n")
    if line is not None and 0 < line <= len(lines):
        what = what.removeprefix(f"'{lines[line - 1]}': ")
    what = _QUALIFIED_TYPE.sub(r"\1", what)
    location = ":".join(str(part) for part in (filename, line, column) if part is not None)
    return f"{location}: {what}"
