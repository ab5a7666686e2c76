"""caffelite/io/prototxt.py: text parsing, errors that point at file:line:column, reading and writing files."""

import logging
import re

import pytest

from caffelite.errors import CaffeliteError, ParseError
from caffelite.io import prototxt
from caffelite.io.prototxt import parse_text, read_net_text, read_solver_text, read_text, write_text
from caffelite.proto import caffe_pb2

LENET_HEAD = """name: "LeNet"  # a comment
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  param { lr_mult: 1 }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1 }
}
"""


def test_parse_text_fills_and_returns_the_message():
    net = caffe_pb2.NetParameter()
    assert parse_text(LENET_HEAD, net) is net
    assert net.name == "LeNet"
    conv = net.layer[0]
    assert (conv.type, list(conv.bottom), list(conv.top)) == ("Convolution", ["data"], ["conv1"])
    assert conv.convolution_param.num_output == 20
    assert list(conv.convolution_param.kernel_size) == [5]
    assert conv.param[0].lr_mult == 1


def test_parse_text_accepts_bytes():
    net = parse_text(LENET_HEAD.encode(), caffe_pb2.NetParameter())
    assert net.layer[0].name == "conv1"


def test_syntax_error_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "broken.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  type "b"\n}\n')
    with pytest.raises(ParseError) as info:
        read_net_text(path)
    assert str(info.value).startswith(f"{path}:4:")
    assert "'  type" not in str(info.value)  # protobuf's echo of the line is dropped


def test_unknown_field_is_named_with_its_message_type(tmp_path):
    path = tmp_path / "typo.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  num_outptu: 3\n}\n')
    with pytest.raises(ParseError) as info:
        read_net_text(path)
    assert str(info.value) == f'{path}:4:3: LayerParameter has no field named "num_outptu".'


def test_unknown_enum_value_is_named():
    with pytest.raises(ParseError, match=r"^net.prototxt:1:\d+: V1LayerParameter.LayerType has no value named FOO"):
        parse_text("layers { type: FOO }", caffe_pb2.NetParameter(), filename="net.prototxt")


def test_missing_required_field_is_an_error():
    with pytest.raises(ParseError, match=r"^clip.prototxt: missing required field\(s\): layer\[0\].clip_param.max$"):
        parse_text("layer { clip_param { min: 0 } }", caffe_pb2.NetParameter(), filename="clip.prototxt")


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "absent.prototxt"
    with pytest.raises(CaffeliteError, match="no such file") as info:
        read_net_text(path)
    assert str(path) in str(info.value)


def test_directory_is_refused_by_name(tmp_path):
    with pytest.raises(CaffeliteError, match=f"^{re.escape(str(tmp_path))}: is a directory"):
        read_solver_text(tmp_path)


def test_absurdly_large_text_is_refused(monkeypatch):
    monkeypatch.setattr(prototxt, "MAX_TEXT_BYTES", 100)
    with pytest.raises(ParseError, match="too large"):
        parse_text("name: 'x' " * 20, caffe_pb2.NetParameter(), filename="big.prototxt")


def test_comments_in_a_legacy_encoding_are_read_with_a_warning(tmp_path, caplog):
    path = tmp_path / "gbk.prototxt"
    path.write_bytes('name: "x"\n# 卷积层\nforce_backward: true\n'.encode("gbk"))
    with caplog.at_level(logging.WARNING, logger="caffelite"):
        net = read_text(path, caffe_pb2.NetParameter())
    assert (net.name, net.force_backward) == ("x", True)
    assert f"{path}:2: not UTF-8" in caplog.text


def test_write_text_round_trips(tmp_path):
    net = parse_text(LENET_HEAD, caffe_pb2.NetParameter())
    path = tmp_path / "out.prototxt"
    write_text(net, path)
    assert 'name: "LeNet"' in path.read_text()
    assert read_net_text(path) == net


def test_solver_without_snapshot_prefix_gets_the_solver_path(tmp_path):
    path = tmp_path / "lenet_solver.prototxt"
    path.write_text('net: "lenet.prototxt"\nbase_lr: 0.01\n')
    solver = read_solver_text(path)
    assert solver.base_lr == pytest.approx(0.01)
    assert solver.snapshot_prefix == str(tmp_path / "lenet_solver")
