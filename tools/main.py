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
from caffelite import draw
from caffelite import log as glog
from caffelite import logtools
from caffelite import parallel
from caffelite import progress
from caffelite.data.features import extract_features
from caffelite.data.image_mean import compute_image_mean, write_mean
from caffelite.data.imageset import convert_imageset
from caffelite.data.mnist import convert_mnist
from caffelite.errors import CaffeliteError
from caffelite.io.prototxt import read_net_text, read_solver_text
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
        return _fail(args, f"error: {error}", 1)
    except MemoryError:
        # Shapes beyond the machine are refused before allocating (caffelite.limits); this is the rest: a net
        # that fits in memory on paper but not beside everything else running.
        return _fail(args, "error: out of memory (a smaller batch_size may fit)", 1)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", 130, traceback_too=False)


def _fail(args, message, code, traceback_too=True):
    """Print the one line (the traceback first with --debug); training on several processes, stop them all: the
    other ranks would otherwise wait for this one forever."""
    if args.debug and traceback_too:
        traceback.print_exc()
    rank = f" (rank {parallel.solver_rank()} of {parallel.solver_count()})" if parallel.solver_count() > 1 else ""
    print(f"caffelite {args.command}{rank}: {message}", file=sys.stderr)
    parallel.abort(code)
    return code


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
    mnist.add_argument("--backend", default="lmdb", choices=["lmdb", "leveldb"], help="the database to write")
    mnist.set_defaults(run=_convert_mnist)

    imageset = commands.add_parser(
        "convert_imageset", help="image files named in a list file to an LMDB/LevelDB of Datum",
        description="Usage: caffelite convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME. LISTFILE holds one "
                    "'relative/path.jpg label' per line; record i is stored under the key '%08d_<path>'.",
    )
    imageset.add_argument("root_folder", help="the folder the list's paths are relative to (ROOTFOLDER/)")
    imageset.add_argument("list_file", help="one 'path label' per line")
    imageset.add_argument("db_name", help="the database to create (must not exist)")
    imageset.add_argument("--gray", action="store_true", help="treat images as grayscale ones")
    imageset.add_argument("--shuffle", action="store_true", help="randomly shuffle the order of images and labels")
    imageset.add_argument(
        "--seed", type=int, default=None,
        help="seed of the --shuffle order (default: unseeded, so each run differs, as with Caffe)",
    )
    imageset.add_argument("--backend", default="lmdb", type=str.lower, choices=("lmdb", "leveldb"),
                          help="the database to write")
    imageset.add_argument("--resize_width", type=int, default=0, help="width images are resized to")
    imageset.add_argument("--resize_height", type=int, default=0, help="height images are resized to")
    imageset.add_argument("--check_size", action="store_true", help="check that all images have the same size")
    imageset.add_argument("--encoded", action="store_true", help="store the encoded (compressed) image in the Datum")
    imageset.add_argument("--encode_type", default="",
                          help="what to encode the images as ('png', 'jpg', ...); implies --encoded")
    imageset.set_defaults(run=_convert_imageset)

    mean = commands.add_parser(
        "compute_image_mean", help="the mean image of an LMDB/LevelDB of Datum, as a binaryproto",
        description="Usage: caffelite compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]",
    )
    mean.add_argument("input_db")
    mean.add_argument("output_file", nargs="?", help="the .binaryproto to write (omit to only log the means)")
    mean.add_argument("--backend", default="lmdb", type=str.lower, choices=("lmdb", "leveldb"),
                      help="the database holding the images")
    mean.set_defaults(run=_compute_image_mean)

    features = commands.add_parser(
        "extract_features", help="save the features a trained net computes to LMDB/LevelDB databases",
        description="Usage: caffelite extract_features PRETRAINED_NET_PARAM FEATURE_EXTRACTION_PROTO "
                    "EXTRACT_FEATURE_BLOB_NAMES SAVE_FEATURE_DATASET_NAMES NUM_MINI_BATCHES DB_TYPE "
                    "[CPU/GPU] [DEVICE_ID]. Blob and dataset names are comma separated, one dataset per blob.",
    )
    features.add_argument("pretrained_net_param", help="the trained weights (.caffemodel)")
    features.add_argument("feature_extraction_proto", help="the net prototxt (TEST phase, with its data layer)")
    features.add_argument("extract_feature_blob_names", help="blob names, comma separated")
    features.add_argument("save_feature_dataset_names", help="databases to create, comma separated, one per blob")
    features.add_argument("num_mini_batches", type=int, help="how many batches to run")
    features.add_argument("db_type", type=str.lower, choices=("lmdb", "leveldb"), help="the database to write")
    features.add_argument("mode", nargs="?", default="CPU", type=str.upper, choices=("CPU", "GPU"),
                          help="accepted for Caffe's command lines; caffelite computes on the CPU")
    features.add_argument("device_id", nargs="?", type=int, default=0, help="ignored (GPU device)")
    features.set_defaults(run=_extract_features)

    parse_log = commands.add_parser(
        "parse_log", help="a training log to CSV tables (Caffe's tools/extra/parse_log.py)",
        description="Write OUTPUT_DIR/<log name>.train and OUTPUT_DIR/<log name>.test, one row per iteration "
                    "that printed net outputs: NumIters, Seconds, LearningRate, then the outputs by name.",
    )
    parse_log.add_argument("logfile_path", help="the training log (glog format, e.g. caffe.INFO)")
    parse_log.add_argument("output_dir", help="the existing directory to write the CSV files in")
    parse_log.add_argument("--delimiter", default=",", help="the column delimiter ('\\t' for a tab; default ',')")
    parse_log.add_argument("--verbose", action="store_true", help="print the names of the files written")
    parse_log.set_defaults(run=_parse_log)

    chart_types = "\n".join(f"  {i}: {logtools.chart_description(i)}" for i in range(len(logtools.CHART_TYPES)))
    plot_log = commands.add_parser(
        "plot_log", help="training curves of logs as a PNG (Caffe's tools/extra/plot_training_log.py.example)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Usage: caffelite plot_log CHART_TYPE OUTPUT.png LOG [LOG ...] (one curve per log).\n"
                    f"Chart types:\n{chart_types}\n"
                    "Accuracy and loss are the first outputs whose names contain 'acc' and 'loss'.",
    )
    plot_log.add_argument("chart_type", type=int, choices=range(len(logtools.CHART_TYPES)), metavar="chart_type",
                          help=f"0-{len(logtools.CHART_TYPES) - 1}, see above")
    plot_log.add_argument("output_png", help="the image to write (.png)")
    plot_log.add_argument("logs", nargs="+", help="training logs (glog format)")
    plot_log.set_defaults(run=_plot_log)

    draw_net = commands.add_parser(
        "draw_net", help="a picture of a net's layers and blobs via Graphviz (pycaffe's python/draw_net.py)",
        description="Draw INPUT_NET_PROTO_FILE into OUTPUT_IMAGE_FILE, in the format its extension names "
                    "(.png, .svg, .pdf, ...; .raw writes the dot source). Needs Graphviz's dot.",
    )
    draw_net.add_argument("input_net_proto_file", help="the net prototxt")
    draw_net.add_argument("output_image_file", help="the image to write")
    draw_net.add_argument("--rankdir", default="LR",
                          help="layout direction: LR (left to right, default), RL, TB (top to bottom) or BT")
    draw_net.add_argument("--phase", default="ALL", choices=["TRAIN", "TEST", "ALL"],
                          help="draw only the layers of this phase (default ALL: every layer)")
    draw_net.add_argument("--display_lrm", action="store_true",
                          help="show the learning-rate multipliers of Convolution, Deconvolution, InnerProduct")
    draw_net.set_defaults(run=_draw_net)

    for sub in (train, test, timing, features):
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
    several = parallel.launched_by_mpi()  # mpirun -n K caffelite train ...: this process is one of K ranks
    if several:
        parallel.init()
    param = read_solver_text(args.solver)
    for state in [param.train_state, *param.test_state]:
        state.level = args.level
        state.stage.extend(_stages(args))
    solver = solver_module.SOLVERS.get(param.type)(param, source=args.solver)
    if args.weights:
        for net in [solver.net, *solver.test_nets]:
            log.info("Finetuning from %s", args.weights)
            net.copy_from(args.weights)
    solver.action_request = _signal_actions(args.sigint_effect, args.sighup_effect)
    log.info("Starting Optimization")
    display = progress.attach(solver, args.progress) if parallel.root_solver() else None
    try:
        if several:
            parallel.solve(solver, args.snapshot or None)
        else:
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



def _convert_imageset(args):
    def report(done, total):
        if done == 0:
            if args.shuffle:
                log.info("Shuffling data")
            log.info("A total of %d images.", total)
            if args.encode_type and not args.encoded:
                log.info("encode_type specified, assuming encoded=true.")
        else:
            log.info("Processed %d files.", done)

    result = convert_imageset(
        args.root_folder, args.list_file, args.db_name, gray=args.gray, shuffle=args.shuffle, seed=args.seed,
        backend=args.backend, resize_height=args.resize_height, resize_width=args.resize_width,
        check_size=args.check_size, encoded=args.encoded, encode_type=args.encode_type, progress=report,
    )
    if result.skipped:
        log.warning("Skipped %d of %d images that could not be read.", len(result.skipped), result.total)
    return 0


def _compute_image_mean(args):
    def report(done):
        if done == 0:
            log.info("Starting iteration")
        else:
            log.info("Processed %d files.", done)

    result = compute_image_mean(args.input_db, backend=args.backend, progress=report)
    if args.output_file:
        log.info("Write to %s", args.output_file)
        write_mean(result.mean, args.output_file)
    log.info("Number of channels: %d", len(result.channel_means))
    for channel, value in enumerate(result.channel_means):
        log.info("mean_value channel [%d]: %s", channel, _fmt(value))
    return 0


def _extract_features(args):
    _allow_python_layers(args)
    if args.mode == "GPU":
        log.warning("GPU mode (device %d) requested: caffelite computes on the CPU", args.device_id)
    else:
        log.info("Using CPU")
    blob_names = args.extract_feature_blob_names.split(",")
    dataset_names = args.save_feature_dataset_names.split(",")
    for name in dataset_names:
        log.info("Opening dataset %s", name)

    def report(blob_name, count):
        log.info("Extracted features of %d query images for feature blob %s", count, blob_name)

    log.info("Extracting Features")
    extract_features(
        args.pretrained_net_param, args.feature_extraction_proto, blob_names, dataset_names, args.num_mini_batches,
        backend=args.db_type, progress=report,
    )
    log.info("Successfully extracted the features!")
    return 0


def _parse_log(args):
    train_rows, test_rows = logtools.parse_log(args.logfile_path)
    written = logtools.save_csv_files(
        args.logfile_path, args.output_dir, train_rows, test_rows, delimiter=args.delimiter
    )
    if args.verbose:
        for path, wrote in written:
            print(f"Wrote {path}" if wrote else f"Not writing {path}; no lines to write")
    return 0


def _plot_log(args):
    logtools.plot_chart(args.chart_type, args.output_png, args.logs)
    log.info("Wrote %s (%s)", args.output_png, logtools.chart_description(args.chart_type))
    return 0


def _draw_net(args):
    net = read_net_text(args.input_net_proto_file)
    print(f"Drawing net to {args.output_image_file}")
    draw.draw_net_to_file(net, args.output_image_file, args.rankdir, _PHASES.get(args.phase), args.display_lrm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
