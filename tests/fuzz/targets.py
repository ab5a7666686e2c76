"""What the fuzzers feed and what they expect: every decoder of untrusted input either succeeds or raises a
caffelite error (CaffeliteError or a subclass); any other exception, or a hang, is a bug.

Shared by the hypothesis tests (tests/fuzz/test_fuzz.py) and the atheris script (tests/fuzz/atheris_targets.py).
Each target takes bytes. The seeds are valid inputs of each kind, which the fuzzers mutate.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from caffelite.data.datum import array_to_datum
from caffelite.data.transformer import DataTransformer
from caffelite.errors import CaffeliteError
from caffelite.io.blob import array_to_blobproto, read_binaryproto
from caffelite.io.prototxt import parse_text
from caffelite.io.upgrade import upgrade_net, upgrade_snapshot_prefix, upgrade_solver
from caffelite.layers.data import _BatchLoader
from caffelite.net import Net
from caffelite.phase import TRAIN
from caffelite.proto import caffe_pb2
from caffelite.solvers.solver import get_solver

MODELS = Path(__file__).resolve().parents[2] / "models"
TINY_NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 }
                                                                    shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def escapes(target, data):
    """Run target(data); return the exception if it is not a caffelite error (None when all is well)."""
    try:
        with np.errstate(all="ignore"):
            target(data)
    except CaffeliteError:
        return None
    except Exception as error:  # noqa: BLE001 - anything else is what the fuzzers look for
        return error
    return None


class Workspace:
    """A temporary folder, the tiny net and solver built once, reused by the targets that read files."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="caffelite-fuzz-"))
        (self.folder / "net.prototxt").write_text(TINY_NET)
        self.solver_file = self.folder / "solver.prototxt"
        self.solver_file.write_text(f'net: "{self.folder}/net.prototxt" base_lr: 0.1 momentum: 0.9 '
                                    'lr_policy: "fixed" random_seed: 1')
        self.solver = get_solver(str(self.solver_file))
        self.net = self.solver.net
        self.file = self.folder / "input"

    def write(self, data, suffix=""):
        path = self.file.with_suffix(suffix) if suffix else self.file
        path.write_bytes(data)
        return str(path)


_workspace = None


def workspace():
    global _workspace
    if _workspace is None:
        _workspace = Workspace()
    return _workspace


# -- targets ------------------------------------------------------------------------------------------
def prototxt_net(data):
    """Text NetParameter: parse, upgrade (as every read of a net definition does)."""
    upgrade_net(parse_text(data, caffe_pb2.NetParameter(), "fuzz.prototxt"), source="fuzz.prototxt")


def prototxt_solver(data):
    solver = upgrade_solver(parse_text(data, caffe_pb2.SolverParameter(), "fuzz.prototxt"), source="fuzz.prototxt")
    upgrade_snapshot_prefix(solver, "fuzz.prototxt")


def caffemodel(data):
    """Weights file bytes: read (binary or text by content, upgraded) and copied into the tiny net by layer name."""
    space = workspace()
    space.net.copy_from(space.write(data, ".weights"))


def solverstate(data):
    space = workspace()
    space.solver.restore(space.write(data, ".solverstate"))


def binaryproto(data):
    read_binaryproto(workspace().write(data, ".binaryproto"))


def datum(data):
    """A database record as the Data layer reads it: parsed, decoded, stacked in a batch of two, transformed."""
    param = caffe_pb2.TransformationParameter(crop_size=2, mirror=True, scale=0.5, mean_value=[1.0])
    transformer = DataTransformer(param, TRAIN, np.random.default_rng(0), where="layer 'data' (Data)")
    records = [(b"00000000", data), (b"00000001", data)]
    loader = _BatchLoader(_Cursor(records), transformer, len(records), (0, 1), "fuzz_lmdb", "layer 'data' (Data)")
    loader.decode(*records[0])
    loader()


def net_builder(data):
    """A net definition (text) built for training and run forward and backward once."""
    param = parse_text(data, caffe_pb2.NetParameter(), "fuzz.prototxt")
    Net(upgrade_net(param, source="fuzz.prototxt"), TRAIN).forward_backward()


class _Cursor:
    def __init__(self, records):
        self.records = records

    def read(self, count, share):
        return self.records[:count]


TARGETS = {
    "prototxt_net": prototxt_net,
    "prototxt_solver": prototxt_solver,
    "caffemodel": caffemodel,
    "solverstate": solverstate,
    "binaryproto": binaryproto,
    "datum": datum,
    "net_builder": net_builder,
}


# -- seeds --------------------------------------------------------------------------------------------
DATUM_SEED = array_to_datum(np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4), label=1).SerializeToString()


def seeds(name):
    """Valid inputs of the kind `name` reads."""
    files = sorted(MODELS.glob("*/*.prototxt"))
    if name in ("prototxt_net", "net_builder"):
        return [p.read_bytes() for p in files if "solver" not in p.name] + [TINY_NET.encode()]
    if name == "prototxt_solver":
        return [p.read_bytes() for p in files if "solver" in p.name]
    if name == "caffemodel":
        weights = workspace().net.to_proto()
        return [weights.SerializeToString(), text_format.MessageToString(weights).encode()]
    if name == "solverstate":
        space = workspace()
        state = caffe_pb2.SolverState(iter=3, learned_net="", current_step=0)
        state.history.extend(array_to_blobproto(np.full(p.shape, 0.5, np.float32)) for p in space.net.learnable_params)
        return [state.SerializeToString()]
    if name == "binaryproto":
        return [array_to_blobproto(np.arange(24, dtype=np.float32).reshape(2, 3, 4)).SerializeToString()]
    if name == "datum":
        encoded = caffe_pb2.Datum(encoded=True, label=2, data=_tiny_png())
        return [DATUM_SEED, encoded.SerializeToString(),
                caffe_pb2.Datum(channels=1, height=2, width=2, float_data=[1, 2, 3, 4]).SerializeToString()]
    raise KeyError(name)


def _tiny_png():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def remove_workspace():
    """Delete the temporary folder (tests call it at the end)."""
    global _workspace
    if _workspace is not None:
        for path in _workspace.folder.iterdir():
            os.remove(path)
        _workspace.folder.rmdir()
        _workspace = None
