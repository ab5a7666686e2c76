"""The `caffelite` command: Caffe's `caffe` tool (train, test, time, device_query) and converters, with Caffe's flags.

Flags are accepted with one dash or two (`-solver x`, `--solver=x`), as gflags does.
"""

import argparse
import logging
import re
import signal
import sys
import traceback

import numpy as np

from caffelite import device
from caffelite import log as glog
from caffelite import progress
from caffelite.data.mnist import convert_mnist
from caffelite.errors import CaffeliteError
from caffelite.io.prototxt import read_solver_text
from caffelite.log import number as _fmt
from caffelite.net import Net
from caffelite.phase import TEST, TRAIN
from caffelite.solvers import solver as solver_module
from caffelite.timing import time_layers

log = logging.getLogger("caffelite")
_PHASES = {"TRAIN": TRAIN, "TEST": TEST}
_SIGNAL_EFFECTS = {"stop": solver_module.STOP, "snapshot": solver_module.SNAPSHOT, "none": solver_module.NONE}


def main(argv=None):
    args = _parser().parse_args(_double_dash(sys.argv[1:] if argv is None else argv))
    glog.configure()
    try:
        return args.run(args) or 0
    except CaffeliteError as error:
        if args.debug:
            traceback.print_exc()
        print(f"caffelite {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"caffelite {args.command}: interrupted", file=sys.stderr)
        return 130


def _double_dash(argv):
    """gflags spellings: `-solver` means `--solver` (single-letter flags like -h stay as they are)."""
    return [re.sub(r"^-(?=[A-Za-z_]{2,})", "--", arg) for arg in argv]


def _parser():
    parser = argparse.ArgumentParser(prog="caffelite", description="Caffe's command line, in Python.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    train = commands.add_parser("train", help="train or finetune a model")
    train.add_argument("--solver", required=True, help="the solver definition prototxt")
    start = train.add_mutually_exclusive_group()
    start.add_argument("--weights", default="", help="pretrained weights to finetune from, comma separated")
    start.add_argument("--snapshot", default="", help="a .solverstate to resume training from")
    for name, default in (("sigint_effect", "stop"), ("sighup_effect", "snapshot")):
        train.add_argument(f"--{name}", default=default, choices=sorted(_SIGNAL_EFFECTS))
    train.add_argument(
        "--progress", default="auto", choices=progress.MODES,
        help="a live status line on the terminal (auto: only when stderr is a terminal)",
    )
    _add_state_flags(train)
    train.set_defaults(run=_train)

    test = commands.add_parser("test", help="score a model over a number of batches")
    test.add_argument("--model", required=True, help="the model definition prototxt")
    test.add_argument("--weights", required=True, help="the trained weights (.caffemodel), comma separated")
    test.add_argument("--iterations", type=int, default=50, help="how many batches to score")
    _add_state_flags(test)
    test.set_defaults(run=_test)

    timing = commands.add_parser("time", help="benchmark a model's forward and backward, layer by layer")
    timing.add_argument("--model", required=True, help="the model definition prototxt")
    timing.add_argument("--iterations", type=int, default=50, help="how many forward-backward passes to time")
    timing.add_argument("--phase", default="TRAIN", choices=sorted(_PHASES), help="the network phase")
    timing.add_argument("--weights", default="", help="weights to load first (.caffemodel), comma separated")
    _add_state_flags(timing)
    timing.set_defaults(run=_time)

    query = commands.add_parser("device_query", help="show what caffelite computes on (CPU, numpy, BLAS)")
    query.set_defaults(run=_device_query)

    mnist = commands.add_parser("convert_mnist", help="MNIST IDX files (gzipped or not) to an LMDB of Datum")
    mnist.add_argument("input_image_file")
    mnist.add_argument("input_label_file")
    mnist.add_argument("output_db_file")
    mnist.add_argument("--backend", default="lmdb", help="the database to write (lmdb)")
    mnist.set_defaults(run=_convert_mnist)

    for sub in (train, test, timing):
        sub.add_argument(
            "--allow_python_layers", action="store_true",
            help="let the model's Python layers import and run their code (off: model files are data only)",
        )
    for sub in commands.choices.values():
        sub.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return parser


def _add_state_flags(parser):
    parser.add_argument("--level", type=int, default=0, help="the network level")
    parser.add_argument("--stage", default="", help="network stages, comma separated")


def _stages(args):
    return [s for s in args.stage.split(",") if s]


def _allow_python_layers(args):
    if not args.allow_python_layers:
        return
    try:
        from caffelite.layers.python import allow_python_layers
    except ModuleNotFoundError as error:
        if error.name != "caffelite.layers.python":
            raise
        raise CaffeliteError("--allow_python_layers: this caffelite has no Python layer support") from None
    allow_python_layers()


def _train(args):
    _allow_python_layers(args)
    param = read_solver_text(args.solver)
    for state in [param.train_state, *param.test_state]:
        state.level = args.level
        state.stage.extend(_stages(args))
    solver = solver_module.SOLVERS.get(param.type)(param)
    if args.weights:
        for net in [solver.net, *solver.test_nets]:
            log.info("Finetuning from %s", args.weights)
            net.copy_from(args.weights)
    solver.action_request = _signal_actions(args.sigint_effect, args.sighup_effect)
    log.info("Starting Optimization")
    display = progress.attach(solver, args.progress)
    try:
        solver.solve(args.snapshot or None)
    finally:
        if display:
            display.close()
    return 0


def _signal_actions(sigint_effect, sighup_effect):
    """Install SIGINT/SIGHUP handlers; the returned callable tells the solver what was asked since last time."""
    pending = []
    effects = {signal.SIGINT: _SIGNAL_EFFECTS[sigint_effect], signal.SIGHUP: _SIGNAL_EFFECTS[sighup_effect]}
    for signum in effects:
        signal.signal(signum, lambda number, frame: pending.append(effects[number]))

    def next_action():
        return pending.pop(0) if pending else solver_module.NONE

    return next_action


def _test(args):
    _allow_python_layers(args)
    net = Net(args.model, TEST, level=args.level, stages=_stages(args), weights=args.weights)
    log.info("Running for %d iterations.", args.iterations)
    totals, loss = {}, 0.0
    for batch in range(args.iterations):
        loss += net.forward_range()
        for name in net.outputs:
            values = net.blobs[name].data.astype(np.float64).ravel()
            totals[name] = totals.get(name, 0.0) + values
            for value in values:
                log.info("Batch %d, %s = %s", batch, name, _fmt(value))
    log.info("Loss: %s", _fmt(loss / args.iterations))
    weights = net.blob_loss_weights
    for name, total in totals.items():
        for value in total / args.iterations:
            weight = weights[name]
            suffix = f" (* {_fmt(weight)} = {_fmt(weight * value)} loss)" if weight else ""
            log.info("%s = %s%s", name, _fmt(value), suffix)
    return 0


def _time(args):
    if args.iterations < 1:
        raise CaffeliteError(f"--iterations must be at least 1, got {args.iterations}")
    _allow_python_layers(args)
    log.info("Use CPU.")
    net = Net(args.model, _PHASES[args.phase], level=args.level, stages=_stages(args), weights=args.weights or None)
    log.info("Performing Forward")
    log.info("Initial loss: %s", _fmt(net.forward_range()))
    log.info("Performing Backward")
    net.backward_range()
    log.info("*** Benchmark begins ***")
    log.info("Testing for %d iterations.", args.iterations)
    result = time_layers(
        net, args.iterations,
        on_iteration=lambda index, ms: log.info("Iteration: %d forward-backward time: %s ms.", index, _fmt(ms)),
    )
    log.info("Average time per layer: ")
    for layer in result.layers:
        log.info("%10s\tforward: %s ms.", layer.name, _fmt(layer.forward_ms))
        log.info("%10s\tbackward: %s ms.", layer.name, _fmt(layer.backward_ms))
    log.info("Average Forward pass: %s ms.", _fmt(result.forward_ms))
    log.info("Average Backward pass: %s ms.", _fmt(result.backward_ms))
    log.info("Average Forward-Backward: %s ms.", _fmt(result.forward_backward_ms))
    log.info("Total Time: %s ms.", _fmt(result.total_ms))
    log.info("*** Benchmark ends ***")
    return 0


def _device_query(args):
    for line in device.query().lines():
        log.info("%s", line)
    return 0


def _convert_mnist(args):
    def report(done, total):
        if done == 0:
            log.info("A total of %d items.", total)
        elif done % 10000 == 0 or done == total:
            log.info("Processed %d items.", done)

    result = convert_mnist(
        args.input_image_file, args.input_label_file, args.output_db_file, backend=args.backend, progress=report
    )
    log.info("Rows: %d Cols: %d", result.rows, result.cols)
    return 0


if __name__ == "__main__":
    sys.exit(main())
