"""caffelite's speed on the classic models, side by side with PyTorch when it is installed.

    python benchmarks/speed.py [--rows lenet,cifar10,caffenet,googlenet,nsfw] [--repeats 20] [--json out.json]
                               [--caffe path/to/caffe]

Rows:
  lenet-train      one full solver iteration (forward, backward, SGD update) of models/lenet, batch 64
  cifar10-train    the same for models/cifar10_quick, batch 100
  caffenet, googlenet, nsfw    deploy nets at batch 10: `forward` and `forward+backward` rows

Data layers are replaced by Input layers of the same shapes, filled once with fixed random images and labels, so
only the network is timed. CaffeNet and GoogLeNet come from BVLC's model zoo prototxts under
../shared/conformance (skipped with a note when absent) with random weights (no pretrained file is shipped);
open_nsfw uses its real weights. Each row reports the median milliseconds per iteration over --repeats runs
after warm-up, images/s, GFLOP/s (convolution and inner-product multiply-adds only, counted from the layers'
shapes) and its share of the float32 matrix-multiply peak measured during the row, the time those matrix
products take by themselves (`gemm ms`: each size timed alone, the floor of a pass making them with numpy's
BLAS), and the peak numpy memory of building the net and running one pass (tracemalloc) against the sum of
weights and activations it must hold.

With PyTorch installed (`pip install -e '.[bench]'`), each row is also built in torch from the same layers and
weights (benchmarks/torch_net.py), its outputs are checked against caffelite's, and the time ratio
caffelite/PyTorch is printed, both measured in this same run.

With --caffe naming a BVLC Caffe `caffe` binary, each row's net (Input layers as above) is also timed by
`caffe time`, three runs falling between caffelite's blocks: a forward row against Caffe's average forward pass, the
others against its average forward-backward (Caffe's `time` has no solver update: the training rows' Caffe time
leaves it out).
"""

import argparse
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

# caffelite before numpy: its BLAS setting (caffelite/__init__.py) must be in place when numpy loads OpenBLAS, or
# OpenBLAS's threads keep spinning after each of caffelite's products and slow down torch's turn in the alternation.
import caffelite  # noqa: F401,I001
import numpy as np

from caffelite import device
from caffelite.io.prototxt import read_net_text, read_solver_text, write_text
from caffelite.layers._im2col import release_shared_workspace
from caffelite.net import Net
from caffelite.phase import TEST, TRAIN
from caffelite.proto import caffe_pb2
from caffelite.solvers.solver import SOLVERS

PROJECT = Path(__file__).resolve().parents[1]
CONFORMANCE = PROJECT.parent / "shared" / "conformance"
DEPLOY_BATCH = 10


@dataclass
class Model:
    name: str
    kind: str  # "train": a solver prototxt; "deploy": a net prototxt
    path: Path
    input_shape: tuple  # per image (C, H, W)
    batch: int
    weights: Path = None


def models(conformance):
    zoo = conformance / "bvlc_caffe" / "models"
    return {
        "lenet": Model("lenet", "train", PROJECT / "models/lenet/lenet_solver.prototxt", (1, 28, 28), 64),
        "cifar10": Model("cifar10", "train", PROJECT / "models/cifar10_quick/cifar10_quick_solver.prototxt",
                         (3, 32, 32), 100),
        "caffenet": Model("caffenet", "deploy", zoo / "bvlc_reference_caffenet/deploy.prototxt", (3, 227, 227),
                          DEPLOY_BATCH),
        "googlenet": Model("googlenet", "deploy", zoo / "bvlc_googlenet/deploy.prototxt", (3, 224, 224),
                           DEPLOY_BATCH),
        "nsfw": Model("nsfw", "deploy", conformance / "pretrained/open_nsfw/deploy.prototxt", (3, 224, 224),
                      DEPLOY_BATCH, conformance / "pretrained/open_nsfw/resnet_50_1by2_nsfw.caffemodel"),
    }


@dataclass
class Row:
    name: str
    ms: float
    images_per_s: float
    gflops: float
    peak_share: float
    peak_gflops: float = None
    products_ms: float = None
    memory_mb: float = None
    memory_ratio: float = None
    torch_ms: float = None
    ratio: float = None
    max_difference: float = None
    caffe_ms: float = None
    caffe_ratio: float = None


# -- building the nets --------------------------------------------------------------------------------
def with_inputs(net_param, phase, image_shape, batch):
    """`net_param` with its data layers (for `phase`) replaced by Input layers: data (batch, *image), label."""
    result = caffe_pb2.NetParameter()
    result.CopyFrom(net_param)
    del result.layer[:]
    for layer in net_param.layer:
        phases = {rule.phase for rule in layer.include if rule.HasField("phase")}
        if phases and phase not in phases:
            continue
        if layer.type in ("Data", "ImageData", "HDF5Data", "MemoryData"):
            shapes = [(batch,) + tuple(image_shape), (batch,)]
            layer = caffe_pb2.LayerParameter(name=layer.name, type="Input", top=layer.top)
            for shape in shapes[:len(layer.top)]:
                layer.input_param.shape.add().dim.extend(shape)
        result.layer.add().CopyFrom(layer)
    return result


def fixed_inputs(net, rng):
    arrays = {}
    for name in net.inputs:
        shape = net.blobs[name].shape
        if len(shape) == 1:  # labels
            arrays[name] = rng.integers(0, 10, size=shape).astype(np.float32)
        else:
            arrays[name] = rng.random(shape, dtype=np.float32)
    return arrays


def load_inputs(net, arrays):
    for name, array in arrays.items():
        net.blobs[name].data[...] = array


def random_weights(net, rng):
    """Weights of a sensible scale (He-like) for deploy prototxts that carry no fillers."""
    for slot in net._slots:
        for index, param in enumerate(slot.function.params):
            if slot.param.type in ("BatchNorm",):
                continue
            if index == 0 and param.data.ndim > 1:
                fan_in = int(np.prod(param.shape[1:]))
                param.data[...] = rng.standard_normal(param.shape, dtype=np.float32) * np.sqrt(2.0 / fan_in)
            else:
                param.data[...] = rng.standard_normal(param.shape, dtype=np.float32) * 0.01


def deploy_param(model, batch, force_backward):
    """The deploy net with Input layers of `batch` images."""
    param = read_net_text(str(model.path))
    param.force_backward = force_backward
    net_param = with_inputs(param, TEST, model.input_shape, batch)
    for layer in net_param.layer:
        if layer.type == "Input":
            del layer.input_param.shape[:]
            layer.input_param.shape.add().dim.extend((batch,) + tuple(model.input_shape))
    return net_param


def build_deploy(model, batch, rng, force_backward):
    net = Net(deploy_param(model, batch, force_backward), TEST)
    if model.weights:
        net.copy_from(str(model.weights))
    else:
        random_weights(net, rng)
    return net


def build_solver(model, rng):
    solver_param = read_solver_text(str(model.path))
    net_param = read_net_text(str(PROJECT / solver_param.net)) if solver_param.net else solver_param.net_param
    solver_param.ClearField("net")
    solver_param.net_param.CopyFrom(with_inputs(net_param, TRAIN, model.input_shape, model.batch))
    for field in ("test_interval", "display", "snapshot"):
        setattr(solver_param, field, 0)
    del solver_param.test_iter[:]
    solver_param.test_initialization = False
    solver_param.random_seed = 1
    return SOLVERS.get(solver_param.type)(solver_param, source=str(model.path))


# -- what a pass costs --------------------------------------------------------------------------------
def matmul_peak(size=2048, repeats=5):
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    a @ a
    best = min(_seconds(lambda: a @ a) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def matrix_products(net, backward):
    """The matrix products of a pass, as (groups, m, k, n): `groups` products of an m x k by a k x n matrix, as
    Caffe computes them. A Convolution makes one per group (num_output/group filters of C/group x kernel inputs, at
    batch x output positions), an InnerProduct one (batch rows of `inputs` values, num_output outputs). Backward
    adds the weight gradient (m x n by n x k) and, where a bottom needs it, the input gradient (k x m by m x n):
    as many multiply-adds each."""
    products = []
    for slot in net._slots:
        layer = slot.function
        if slot.param.type == "Convolution":
            groups = layer.group
            m, k = layer.num_output // groups, layer.channels // groups * int(np.prod(layer.kernel))
            n = layer.batch * int(np.prod(layer.out_shape))
        elif slot.param.type == "InnerProduct":
            groups, m, k, n = 1, layer.rows, layer.inputs, layer.num_output
        else:
            continue
        products.append((groups, m, k, n))
        if backward and slot.need_backward:
            products.append((groups, m, n, k))
            if any(slot.bottom_need_backward):
                products.append((groups, k, m, n))
    return products


def flops(products):
    """Multiply-adds x 2 of matrix products (groups, m, k, n), as matrix_products lists them."""
    return sum(2 * groups * m * k * n for groups, m, k, n in products)


def products_alone(products, repeats=3):
    """Milliseconds that `products` take by themselves: each size timed alone on random float32 operands (the best
    of `repeats` runs) and counted once per group. A pass that makes these products with numpy's BLAS takes at
    least this long: what a row takes beyond it goes to im2col, pooling, normalization and the other passes."""
    rng = np.random.default_rng(0)
    best = {}
    for _, m, k, n in products:
        if (m, k, n) not in best:
            a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
            out = np.empty((m, n), dtype=np.float32)
            np.matmul(a, b, out=out)
            best[m, k, n] = min(_seconds(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 1000 * sum(groups * best[m, k, n] for groups, m, k, n in products)


def timed(steps, repeats, warmup=3, block=5, between=None):
    """Median milliseconds of each step over at least `repeats` runs. The steps take turns in blocks of `block`
    timed runs, so that a change in the machine's load hits all alike; each block starts with one untimed run,
    because the first run after a switch pays for the other library: torch's OpenMP threads spin on after its
    step and take a core from ours (on the 2-core AMD VM, 2026-12-07: our LeNet step 29 ms first, 24 ms after;
    with OMP_WAIT_POLICY=PASSIVE 25 ms first, but torch's own step 24 -> 28.5 ms). `between`, if given, is called
    after every round of blocks: a measurement of its own (Caffe's) that should share the machine's spells."""
    for _ in range(warmup):
        for step in steps:
            step()
    samples = [[] for _ in steps]
    while len(samples[0]) < repeats:
        for step, times in zip(steps, samples):
            step()
            times.extend(_seconds(step) for _ in range(min(block, repeats - len(times))))
        if between:
            between()
    return [statistics.median(times) * 1000 for times in samples]


def timed_row(steps, repeats, caffe_between=None):
    """timed(), with the matrix-multiply peak measured before the first round and after every round (with Caffe's
    runs, if any): the step medians and the median peak. A row's %peak is against the peak of its own time: this
    VM's speed wanders, and one peak measured at the start of a 15-minute table read 136-187 GFLOP/s from one table
    to the next."""
    peaks = [matmul_peak()]

    def between():
        peaks.append(matmul_peak())
        if caffe_between:
            caffe_between()

    return timed(steps, repeats, between=between), statistics.median(peaks)


def _seconds(step):
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def peak_memory(build, run):
    """Peak bytes allocated while `run(net)` runs, counting what the built net already holds (its weights and
    blobs), but not what building it cost (parsing, the benchmark's own weight generation); and the net. The
    scratch that forward-only layers share outlives a net: it is let go first, so that a row's peak holds the
    scratch its own layers need, whatever the rows before left there (a larger buffer, or blocks yet to merge)."""
    release_shared_workspace()
    tracemalloc.start()
    try:
        net = build()
        gc.collect()
        tracemalloc.reset_peak()
        run(net)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, net


def held_bytes(net, backward):
    """What the pass must hold: weights and every blob's data (and their diffs when it runs backward); an array
    that several blobs share (a Split's tops and its bottom) counts once."""
    arrays = [p.data for p in net.learnable_params] + [b.data for b in net.blobs.values()]
    total = sum({a.__array_interface__["data"][0]: a.nbytes for a in arrays}.values())
    return total * 2 if backward else total


# -- rows ---------------------------------------------------------------------------------------------
def train_row(model, args, torch_module):
    rng = np.random.default_rng(0)
    solver = build_solver(model, rng)
    inputs = fixed_inputs(solver.net, rng)
    load_inputs(solver.net, inputs)
    steps = [lambda: solver.step(1)]
    difference = None
    if torch_module:
        difference, torch_step = _torch_train(solver, inputs)
        steps.append(torch_step)
    with CaffeTimer(args.caffe, solver.param.net_param, "TRAIN", args.repeats) as caffe:
        times, peak = timed_row(steps, args.repeats, caffe.between)
        row = _row(f"{model.name}-train", model.batch, times[0], matrix_products(solver.net, backward=True), peak)
        _compare(row, times, difference)
        if args.caffe:
            _against_caffe(row, caffe.medians()[1])
    return [row]


def _against_caffe(row, caffe_ms):
    row.caffe_ms, row.caffe_ratio = caffe_ms, row.ms / caffe_ms


class CaffeTimer:
    """BVLC Caffe's `caffe time` on the same net (weights from its fillers, zero where a deploy prototxt names none,
    which leaves the work of a pass unchanged), in a process of its own: `medians()` is the median over `runs` runs
    of its mean forward and mean forward-backward milliseconds over `iterations` passes (after one untimed pass).
    `between` runs Caffe once (until there are `runs`) and is meant for timed(): Caffe's runs then fall between
    caffelite's blocks and share the machine's spells with them, where a run after caffelite's turn saw another
    spell (2026-12-07 on the 2-core VM: CaffeNet's forward 202 ms in one full table, 245-306 in others). With no
    binary, it does nothing."""

    def __init__(self, binary, net_param, phase, iterations, runs=3):
        self.runs, self._wanted, self._name, self._command = [], runs, net_param.name, None
        if binary:
            self._folder = tempfile.TemporaryDirectory()
            model = Path(self._folder.name) / "net.prototxt"
            write_text(net_param, model)
            self._command = [str(binary), "time", f"-model={model}", f"-phase={phase}", f"-iterations={iterations}"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._command:
            self._folder.cleanup()

    @property
    def between(self):
        return self._run_once if self._command else None

    def _run_once(self):
        if len(self.runs) < self._wanted:
            self.runs.append(_caffe_run(self._command, self._name))

    def medians(self):
        while len(self.runs) < self._wanted:
            self._run_once()
        return tuple(statistics.median(column) for column in zip(*self.runs))


def _caffe_run(command, name):
    try:
        # glog writes its own log files into /tmp unless told to log to stderr only, which is captured here.
        run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "GLOG_logtostderr": "1"})
    except OSError as error:
        raise SystemExit(f"--caffe: cannot run {command[0]}: {error.strerror}") from None
    log = run.stdout + run.stderr
    times = [re.search(rf"Average {average}: ([-+.\deE]+) ms", log) for average in ("Forward pass", "Forward-Backward")]
    if run.returncode or not all(times):
        tail = "\n".join(log.strip().splitlines()[-5:])
        raise SystemExit(f"--caffe: `{' '.join(command[:2])}` on {name or 'the net'} failed "
                         f"(exit status {run.returncode}):\n{tail}")
    return tuple(float(match.group(1)) for match in times)


def _compare(row, times, difference):
    if len(times) > 1:
        row.torch_ms, row.max_difference = times[1], difference
        row.ratio = row.ms / row.torch_ms


def _torch_train(solver, inputs):
    """torch's iteration, checked against ours first: one step from equal weights gives equal weights."""
    import torch_net
    twin = torch_net.TorchNet(solver.net, requires_grad=True)
    optimizer = twin.sgd(solver.param)

    def step():
        optimizer.zero_grad(set_to_none=False)
        loss = twin.loss(twin(inputs))
        loss.backward()
        optimizer.step()

    twin_check = torch_net.TorchNet(solver.net, requires_grad=True)
    check_optimizer = twin_check.sgd(solver.param)
    saved = [p.data.copy() for p in solver.net.learnable_params]
    history = [h.copy() for h in solver.history]
    iteration = solver.iter
    solver.iter = 0
    for h in solver.history:
        h[...] = 0
    solver.param.lr_policy = "fixed"
    solver.step(1)
    check_optimizer.zero_grad()
    twin_check.loss(twin_check(inputs)).backward()
    check_optimizer.step()
    difference = max(float(np.max(np.abs(p.data - t.detach().numpy())))
                     for p, t in zip(solver.net.learnable_params, twin_check.parameters()))
    for p, value in zip(solver.net.learnable_params, saved):
        p.data[...] = value
    for h, value in zip(solver.history, history):
        h[...] = value
    solver.iter = iteration
    return difference, step


def deploy_rows(model, args, torch_module):
    rows = []
    # Caffe's forward pass is the same with force_backward, and its `time` runs the backward anyway: one timing of
    # the force_backward net gives both rows their numbers, its runs falling between the forward row's blocks.
    with CaffeTimer(args.caffe, deploy_param(model, model.batch, True), "TEST", args.repeats) as caffe:
        for backward in (False, True):
            rows.append(_deploy_row(model, args, torch_module, backward, caffe.between))
        if args.caffe:
            forward_ms, both_ms = caffe.medians()
            _against_caffe(rows[0], forward_ms)
            _against_caffe(rows[1], both_ms)
    return rows


def _deploy_row(model, args, torch_module, backward, caffe_between):
    """One deploy row: a forward, or a forward and a backward from the output (force_backward)."""
    rng = np.random.default_rng(0)
    memory, net = peak_memory(lambda: build_deploy(model, model.batch, rng, force_backward=backward),
                              lambda net: _run_once(net, backward))
    inputs = fixed_inputs(net, np.random.default_rng(1))
    load_inputs(net, inputs)
    output = net.outputs[-1]
    grad = np.random.default_rng(2).random(net.blobs[output].shape, dtype=np.float32)
    if backward:
        def step():
            net.forward_range()
            net.blobs[output].grad[...] = grad
            net.backward_range()
    else:
        step = net.forward_range
    steps, difference = [step], None
    if torch_module:
        difference, torch_step = _torch_deploy(net, inputs, output, grad, backward, torch_module)
        steps.append(torch_step)
    times, peak = timed_row(steps, args.repeats, caffe_between)
    row = _row(f"{model.name}-{'forward+backward' if backward else 'forward'}", model.batch, times[0],
               matrix_products(net, backward), peak)
    row.memory_mb = memory / 2**20
    row.memory_ratio = memory / held_bytes(net, backward)
    _compare(row, times, difference)
    return row


def _run_once(net, backward):
    net.forward_range()
    if backward:
        net.backward_range()


def _torch_deploy(net, inputs, output, grad, backward, torch):
    import torch_net
    twin = torch_net.TorchNet(net, requires_grad=backward)
    net.forward_range()
    ours = net.blobs[output].data.copy()
    with torch.set_grad_enabled(backward):
        theirs = twin(inputs)[output].detach().numpy()
    difference = float(np.max(np.abs(ours - theirs)))
    seed = torch.from_numpy(grad)
    if backward:
        def step():
            for w in twin.parameters():
                w.grad = None
            twin(inputs)[output].backward(seed)
    else:
        def step():
            with torch.no_grad():
                twin(inputs)
    return difference, step


def _row(name, batch, ms, products, peak):
    gflops = flops(products) / (ms / 1000) / 1e9
    return Row(name, ms, batch / (ms / 1000), gflops, gflops / peak, peak, products_alone(products))


# -- output -------------------------------------------------------------------------------------------
def print_table(rows, out=None):
    out = out or sys.stdout
    spin = device.openblas_thread_timeout()
    spin = f"; OpenBLAS idle threads spin 2^{spin} clock ticks" if spin is not None else ""
    peaks = [r.peak_gflops for r in rows]
    peaks = f"{min(peaks):.0f}-{max(peaks):.0f}" if peaks else "-"
    print(f"matrix-multiply peak (float32, 2048^3) during the rows: {peaks} GFLOP/s{spin}", file=out)
    caffe = any(r.caffe_ms is not None for r in rows)
    header = (f"{'row':28} {'ms':>9} {'img/s':>8} {'GFLOP/s':>8} {'%peak':>6} {'gemm ms':>8} {'mem MB':>8} "
              f"{'mem/held':>8} {'torch ms':>9} {'ratio':>6} {'max |diff|':>10}"
              + (f" {'caffe ms':>9} {'/caffe':>6}" if caffe else ""))
    print(header, file=out)
    for r in rows:
        print(f"{r.name:28} {r.ms:9.2f} {r.images_per_s:8.0f} {r.gflops:8.1f} {100 * r.peak_share:6.1f} "
              f"{_opt(r.products_ms, '8.2f')} {_opt(r.memory_mb, '8.0f')} {_opt(r.memory_ratio, '8.2f')} "
              f"{_opt(r.torch_ms, '9.2f')} {_opt(r.ratio, '6.2f')} {_opt(r.max_difference, '10.2e')}"
              + (f" {_opt(r.caffe_ms, '9.2f')} {_opt(r.caffe_ratio, '6.2f')}" if caffe else ""), file=out)


def _opt(value, spec):
    width = int(spec.split(".")[0])
    return f"{value:{spec}}" if value is not None else "-".rjust(width)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="lenet,cifar10,caffenet,googlenet,nsfw")
    parser.add_argument("--repeats", type=int, default=20, help="timed iterations per row (median reported)")
    parser.add_argument("--conformance", type=Path, default=CONFORMANCE, help="shared/conformance folder")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--caffe", type=Path, help="a BVLC Caffe `caffe` binary: time each row with `caffe time` too")
    args = parser.parse_args(argv)
    if args.caffe and not (args.caffe.is_file() and os.access(args.caffe, os.X_OK)):
        parser.error(f"--caffe: {args.caffe} is not an executable file")
    torch_module = None
    if not args.no_torch:
        try:
            import torch as torch_module
        except ImportError:
            print("PyTorch not installed (pip install -e '.[bench]'): no comparison column", file=sys.stderr)
    catalogue = models(args.conformance)
    names = args.rows.split(",")
    unknown = [name for name in names if name not in catalogue]
    if unknown:
        parser.error(f"--rows: no model named {', '.join(unknown)} (the models: {','.join(catalogue)})")
    rows = []
    for name in names:
        model = catalogue[name]
        if not model.path.exists():
            print(f"{name}: {model.path} not found, row skipped", file=sys.stderr)
            continue
        build = train_row if model.kind == "train" else deploy_rows
        rows.extend(build(model, args, torch_module))
    print_table(rows)
    if args.json:
        machine = {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                   "processor": platform.processor() or platform.machine(),
                   "openblas_thread_timeout": device.openblas_thread_timeout()}
        if torch_module:
            machine["torch"] = torch_module.__version__
        args.json.write_text(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
