"""Coverage-guided fuzzing of caffelite's decoders with atheris (pip install -e '.[fuzz]').

    python tests/fuzz/atheris_targets.py <target> [libFuzzer options, e.g. -runs=100000 -max_len=4096 corpus/]

Targets: prototxt_net, prototxt_solver, caffemodel, solverstate, binaryproto, datum, net_builder (see
tests/fuzz/targets.py). The oracle is the same as the hypothesis tests': anything but a caffelite error is a
crash, which atheris reports with the input that caused it. The valid seeds of each target are written to a
temporary corpus folder first, so the fuzzer starts from inputs that pass the first checks.

libFuzzer ends its process with C's exit(), which skips Python's atexit handlers, so the fuzzing runs in a forked
child; the parent waits for it, then deletes the one temporary folder that everything of the run was written under.
"""

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `fuzz.targets`

import atheris  # noqa: E402

with atheris.instrument_imports(include=["caffelite"]):
    from fuzz import targets  # noqa: E402


def main(argv):
    if len(argv) < 2 or argv[1] not in targets.TARGETS:
        print(__doc__, file=sys.stderr)
        return 2
    name = argv[1]
    target = targets.TARGETS[name]
    logging.getLogger("caffelite").setLevel(logging.WARNING)

    def test_one_input(data):
        error = targets.escapes(target, data)
        if error is not None:
            raise error

    root = tempfile.mkdtemp(prefix=f"caffelite-fuzz-{name}-")
    tempfile.tempdir = root  # the targets' own temporary files land here too
    corpus = Path(root) / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(targets.seeds(name)):
        (corpus / f"seed{index}").write_bytes(seed)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        atheris.Setup([argv[0], *argv[2:], str(corpus)], test_one_input)
        atheris.Fuzz()
        os._exit(0)
    try:
        while True:
            try:
                _, status = os.waitpid(child, 0)
                return os.waitstatus_to_exitcode(status)
            except KeyboardInterrupt:  # Ctrl-C reaches the child too: let it report and end first
                continue
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
