"""caffe_pb2.py is up to date with proto/caffe.proto, and the schema keeps Caffe's wire contract."""

from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from caffelite.proto import build, caffe_pb2

F = FieldDescriptor


def _field(message, name):
    return getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[name]


def test_checked_in_caffe_pb2_is_current(tmp_path):
    generated = build.generate(tmp_path).read_bytes()
    checked_in = (Path(build.__file__).parent / "caffe_pb2.py").read_bytes()
    assert generated == checked_in, "caffe_pb2.py is stale: run python -m caffelite.proto.build"


def test_generate_needs_the_proto_source(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "PROTO_FILE", tmp_path / "caffe.proto")
    with pytest.raises(FileNotFoundError, match="source tree"):
        build.generate(tmp_path / "out")


def test_generate_reports_protoc_errors(tmp_path, monkeypatch):
    bad = tmp_path / "caffe.proto"
    bad.write_text('syntax = "proto2";\nmessage Broken { optional Missing m = 1; }\n')
    monkeypatch.setattr(build, "PROTO_DIR", tmp_path)
    monkeypatch.setattr(build, "PROTO_FILE", bad)
    with pytest.raises(RuntimeError, match="protoc failed"):
        build.generate(tmp_path / "out")


@pytest.mark.parametrize("message, name, number, type_", [
    ("LayerParameter", "name", 1, F.TYPE_STRING),
    ("LayerParameter", "type", 2, F.TYPE_STRING),
    ("LayerParameter", "bottom", 3, F.TYPE_STRING),
    ("LayerParameter", "top", 4, F.TYPE_STRING),
    ("LayerParameter", "blobs", 7, F.TYPE_MESSAGE),
    ("LayerParameter", "convolution_param", 106, F.TYPE_MESSAGE),
    ("LayerParameter", "inner_product_param", 117, F.TYPE_MESSAGE),
    ("LayerParameter", "clip_param", 148, F.TYPE_MESSAGE),
    ("NetParameter", "layer", 100, F.TYPE_MESSAGE),
    ("NetParameter", "layers", 2, F.TYPE_MESSAGE),
    ("BlobProto", "shape", 7, F.TYPE_MESSAGE),
    ("BlobProto", "double_data", 8, F.TYPE_DOUBLE),
    ("BlobShape", "dim", 1, F.TYPE_INT64),
    ("SolverParameter", "random_seed", 20, F.TYPE_INT64),
    ("SolverState", "history", 3, F.TYPE_MESSAGE),
    ("V1LayerParameter", "layer", 1, F.TYPE_MESSAGE),
    ("V1LayerParameter", "blob_share_mode", 1002, F.TYPE_ENUM),
])
def test_field_numbers_and_types(message, name, number, type_):
    field = _field(message, name)
    assert (field.number, field.type) == (number, type_)


@pytest.mark.parametrize("message, name, expected", [
    ("SolverParameter", "momentum2", pytest.approx(0.999)),
    ("SolverParameter", "delta", pytest.approx(1e-8)),
    ("SolverParameter", "rms_decay", pytest.approx(0.99)),
    ("SolverParameter", "clip_gradients", -1.0),
    ("SolverParameter", "test_initialization", True),
    ("SolverParameter", "snapshot_format", caffe_pb2.SolverParameter.BINARYPROTO),
    ("SolverParameter", "solver_mode", caffe_pb2.SolverParameter.GPU),
    ("SolverParameter", "type", "SGD"),
    ("SolverParameter", "regularization_type", "L2"),
    ("SolverParameter", "random_seed", -1),
    ("ConvolutionParameter", "bias_term", True),
    ("ConvolutionParameter", "group", 1),
    ("PoolingParameter", "round_mode", caffe_pb2.PoolingParameter.CEIL),
    ("FillerParameter", "type", "constant"),
    ("FillerParameter", "sparse", -1),
    ("NetState", "phase", caffe_pb2.TEST),
    ("ParamSpec", "lr_mult", 1.0),
    ("LossParameter", "normalization", caffe_pb2.LossParameter.VALID),
    ("DataParameter", "backend", caffe_pb2.DataParameter.LEVELDB),
    ("BatchNormParameter", "moving_average_fraction", pytest.approx(0.999)),
])
def test_defaults(message, name, expected):
    assert getattr(getattr(caffe_pb2, message)(), name) == expected


def test_pooling_round_mode_enum():
    enum = _field("PoolingParameter", "round_mode").enum_type
    assert enum.full_name == "caffe.PoolingParameter.RoundMode"
    assert {v.name: v.number for v in enum.values} == {"CEIL": 0, "FLOOR": 1}


@pytest.mark.parametrize("message, name, packed", [
    ("BlobShape", "dim", True),
    ("BlobProto", "data", True),
    ("BlobProto", "diff", True),
    ("BlobProto", "double_data", True),
    ("Datum", "float_data", False),
    ("ConvolutionParameter", "kernel_size", False),
])
def test_packed_repeated_fields(message, name, packed):
    field = _field(message, name)
    assert field.is_repeated and field.is_packed == packed


def test_packed_wire_encoding():
    # field 1, wire type 2 (length-delimited), 2 bytes of varints
    assert caffe_pb2.BlobShape(dim=[2, 3]).SerializeToString() == b"\x0a\x02\x02\x03"


def test_clip_bounds_are_required():
    assert _field("ClipParameter", "min").is_required and _field("ClipParameter", "max").is_required


@pytest.mark.parametrize("name, number", [
    ("NONE", 0), ("ACCURACY", 1), ("CONCAT", 3), ("CONVOLUTION", 4), ("DATA", 5), ("DROPOUT", 6),
    ("INNER_PRODUCT", 14), ("POOLING", 17), ("RELU", 18), ("SOFTMAX_LOSS", 21), ("ABSVAL", 35),
    ("DECONVOLUTION", 39),
])
def test_v1_layer_type_values(name, number):
    assert caffe_pb2.V1LayerParameter.LayerType.Value(name) == number


def test_caffelite_additions_use_numbers_bvlc_never_uses():
    """Fork layers' params live at 2001+ in LayerParameter; every BVLC field there is below 200."""
    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    additions = {"gelu_param", "upsample_param", "interp_param", "smooth_l1_loss_param"}
    assert all(fields[name].number >= 2001 for name in additions)
    assert all(field.number < 200 for name, field in fields.items() if name not in additions)
    assert caffe_pb2.UpsampleParameter.DESCRIPTOR.fields_by_name["upsample_h"].number == 6  # SegNet's number
