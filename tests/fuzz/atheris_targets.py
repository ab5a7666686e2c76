"""Coverage-guided fuzzing of caffelite's decoders with atheris (pip install -e '.[fuzz]').

    python tests/fuzz/atheris_targets.py <target> [libFuzzer options, e.g. -runs=100000 -max_len=4096 corpus/]

Targets: prototxt_net, prototxt_solver, caffemodel, solverstate, binaryproto, datum, net_builder (see
tests/fuzz/targets.py). The oracle is the same as the hypothesis tests': anything but a caffelite error is a
crash, which atheris reports with the input that caused it. The valid seeds of each target are written to a
temporary corpus folder first, so the fuzzer starts from inputs that pass the first checks.
"""

import atexit
import logging
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

    corpus = Path(tempfile.mkdtemp(prefix=f"caffelite-{name}-corpus-"))
    for index, seed in enumerate(targets.seeds(name)):
        (corpus / f"seed{index}").write_bytes(seed)
    # libFuzzer ends the process itself when done: clean up at exit.
    atexit.register(shutil.rmtree, corpus, ignore_errors=True)
    atexit.register(targets.remove_workspace)
    atheris.Setup([argv[0], *argv[2:], str(corpus)], test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
