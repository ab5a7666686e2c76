"""Shared by the solver tests: tiny nets, a solver of any type, a step-by-step check of an update rule against
a float64 formula, and a resume check that continues a snapshot in a new process."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from google.protobuf import text_format

import caffelite
from caffelite.io.binary import read_caffemodel, read_solverstate
from caffelite.io.blob import blobproto_to_array
from caffelite.io.hdf5 import read_solverstate_hdf5, read_weights_hdf5
from caffelite.proto import caffe_pb2
from caffelite.solvers import SOLVERS

PROJECT = Path(__file__).resolve().parents[2]

# Fed through Input blobs, so every step sees the same batch. ip's bias learns at twice the rate, undecayed.
NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 8 dim: 4 } shape { dim: 8 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

# No inputs to feed: constant DummyData, so a run in another process sees exactly the same batches.
DUMMY_NET = """
name: "dummy"
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 6 dim: 4 } shape { dim: 6 }
                           data_filler { type: "constant" value: 0.5 } data_filler { type: "constant" value: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

# A setting each solver type accepts (AdaGrad and RMSProp refuse momentum), used by the checks run on all types.
SETTINGS = {
    "SGD": "momentum: 0.9",
    "Nesterov": "momentum: 0.9",
    "AdaGrad": "",
    "RMSProp": "rms_decay: 0.9",
    "AdaDelta": "momentum: 0.95 delta: 1e-6",
    "Adam": "momentum: 0.9 momentum2: 0.999",
    "AdamW": "momentum: 0.9 momentum2: 0.999",
    "RAdam": "momentum: 0.9 momentum2: 0.9",  # ρt passes 4 at t = 5: both of RAdam's branches run
}


def solver_param(solver_type, extra="", seed=3, net=NET):
    param = text_format.Merge(  # Merge: `extra` may override the defaults given first
        f"""type: "{solver_type}" base_lr: 0.1 weight_decay: 0.01 lr_policy: "fixed" max_iter: 6
            display: 0 random_seed: {seed} snapshot_after_train: false {extra}""",
        caffe_pb2.SolverParameter(),
    )
    param.net_param.CopyFrom(text_format.Parse(net, caffe_pb2.NetParameter()))
    return param


def make_solver(solver_type, extra="", seed=3):
    """A solver of `solver_type` over NET, its inputs fed."""
    solver = SOLVERS.get(solver_type)(solver_param(solver_type, extra, seed))
    feed(solver.net)
    return solver


def feed(net):
    rng = np.random.default_rng(11)
    net.blobs["data"].data[...] = rng.standard_normal((8, 4))
    net.blobs["label"].data[...] = rng.integers(0, 3, size=8)


def check_against_formula(solver, rule, steps, layout=()):
    """Step `solver` `steps` times; after each step its weights must equal `rule`'s, computed in float64.

    `rule(w, g, lr, decay, t, h)` returns the new weights of one param from its weights `w`, raw gradient `g`
    (no weight decay added), local rate lr = base_lr * lr_mult, decay = weight_decay * decay_mult, t = iter + 1,
    and `h`, a dict the rule keeps its history in. `layout` names the dict entries the solver's history blocks
    must hold, block by block (Adam: ("m", "v")).
    """
    p = solver.param
    reference = caffelite.Net(text_format.Parse(NET, caffe_pb2.NetParameter()), caffelite.TRAIN)
    feed(reference)
    params = solver.net.learnable_params
    histories = [{} for _ in params]
    for it in range(steps):
        for mine, theirs in zip(reference.learnable_params, params):
            mine.data[...] = theirs.data  # gradients at exactly the solver's weights
        reference.clear_param_diffs()
        reference.forward_backward()
        expected = [
            rule(
                w=tensor.data.astype(np.float64),
                g=ref.grad.astype(np.float64),
                lr=p.base_lr * solver.net.params_lr[index],
                decay=p.weight_decay * solver.net.params_weight_decay[index],
                t=it + 1,
                h=histories[index],
            )
            for index, (tensor, ref) in enumerate(zip(params, reference.learnable_params))
        ]
        solver.step(1)
        for index, (tensor, wanted) in enumerate(zip(params, expected)):
            np.testing.assert_allclose(tensor.data, wanted, rtol=2e-5, atol=1e-6, err_msg=f"iter {it}, param {index}")
            for block, name in enumerate(layout):
                np.testing.assert_allclose(
                    solver.history_block(block, index), histories[index][name], rtol=2e-5, atol=1e-7,
                    err_msg=f"iter {it}, history block {block} ({name}), param {index}",
                )
    assert solver.iter == steps
    return histories


def check_same_training(first, second, steps=3):
    """`steps` steps of each solver end at exactly the same weights."""
    first.step(steps)
    second.step(steps)
    for a, b in zip(first.net.learnable_params, second.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)


# -- resume in a new process --------------------------------------------------------------------
_RESUME_SCRIPT = """
import sys
import caffelite
args = sys.argv[1:]
for solver_file, state_file in zip(args[::2], args[1::2]):
    caffelite.get_solver(solver_file).solve(state_file)
"""


def write_dummy_solver(folder, solver_type, name, snapshot_format="BINARYPROTO", extra=""):
    """A solver prototxt `name`.prototxt in `folder` over DUMMY_NET: 6 iterations, a snapshot every 3."""
    net = folder / "dummy_net.prototxt"
    if not net.exists():
        net.write_text(DUMMY_NET)
    path = folder / f"{name}.prototxt"
    path.write_text(
        # multistep: the resumed run must pick current_step up from the state (one step per iteration at most)
        f'net: "{net}" type: "{solver_type}" base_lr: 0.05 weight_decay: 0.01 lr_policy: "multistep" gamma: 0.5 '
        f'stepvalue: 1 stepvalue: 2 stepvalue: 4 max_iter: 6 snapshot: 3 snapshot_prefix: "{folder / name}" '
        f"snapshot_format: {snapshot_format} display: 0 random_seed: 5 {SETTINGS[solver_type]} {extra}"
    )
    return path


def resume_in_new_process(pairs, cwd):
    """Run get_solver(solver).solve(state) for each (solver file, state file) in a fresh interpreter."""
    args = [str(item) for pair in pairs for item in pair]
    done = subprocess.run(
        [sys.executable, "-c", _RESUME_SCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]


def snapshot_contents(prefix, iteration, snapshot_format="BINARYPROTO"):
    """(iter, current_step, {layer: [weight bytes]}, [history bytes]) of the snapshot `prefix`_iter_N."""
    base = f"{prefix}_iter_{iteration}"
    if snapshot_format == "HDF5":
        weights = {name: [blobs[i].tobytes() for i in sorted(blobs)]
                   for name, blobs in read_weights_hdf5(base + ".caffemodel.h5").items()}
        state = read_solverstate_hdf5(base + ".solverstate.h5")
        return state.iter, state.current_step, weights, [h.tobytes() for h in state.history]
    model = read_caffemodel(base + ".caffemodel")
    weights = {layer.name: [blobproto_to_array(b).tobytes() for b in layer.blobs] for layer in model.layer}
    state = read_solverstate(base + ".solverstate")
    return state.iter, state.current_step, weights, [blobproto_to_array(h).tobytes() for h in state.history]
