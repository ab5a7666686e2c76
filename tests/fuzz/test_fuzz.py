"""Property-based fuzzing: whatever bytes a decoder or the Net builder is given, only caffelite errors escape.

Each decoder gets FUZZ_INPUTS generated inputs (10,000 by default; CAFFELITE_FUZZ_INPUTS overrides): mutations of
valid files of its kind; the Net builder gets as many net definitions generated from the schema. Each hypothesis
example carries BATCH inputs (hypothesis's own cost per example is far above a decoder's), still shrunk to the
smallest failing one. The generation is derandomized, so a CI run is repeatable, and each example must finish
within the deadline (no hang).
"""

import logging
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import strategies, targets

FUZZ_INPUTS = int(os.environ.get("CAFFELITE_FUZZ_INPUTS", "10000"))
BATCH = 10
PROFILE = settings(max_examples=max(1, FUZZ_INPUTS // BATCH), derandomize=True, database=None, deadline=5000,
                   suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module", autouse=True)
def quiet_and_clean():
    """No INFO logging per built net (it is most of the cost); the temporary files go at the end."""
    logger = logging.getLogger("caffelite")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)
    targets.remove_workspace()


def check(name, inputs):
    for data in inputs:
        error = targets.escapes(targets.TARGETS[name], data)
        assert error is None, f"{name}: {type(error).__name__}: {error} escaped on input {data[:200]!r}"


def batches(strategy):
    return st.lists(strategy, min_size=BATCH, max_size=BATCH)


DECODERS = ["prototxt_net", "prototxt_solver", "caffemodel", "solverstate", "binaryproto", "datum"]


@pytest.mark.parametrize("name", DECODERS)
def test_decoders_raise_only_caffelite_errors(name):
    @PROFILE
    @given(batches(strategies.mutated(targets.seeds(name))))
    def run(inputs):
        check(name, inputs)

    run()


def test_the_net_builder_raises_only_caffelite_errors():
    @PROFILE
    @given(batches(strategies.net_text()))
    def run(inputs):
        check("net_builder", inputs)

    run()


def test_the_seeds_are_valid_inputs():
    """The fuzzers start from inputs every target accepts, so mutations reach past the first check."""
    for name in DECODERS:
        for seed in targets.seeds(name):
            targets.TARGETS[name](seed)
