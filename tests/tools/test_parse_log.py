"""Caffe's own log parser (tools/extra/parse_log.py + extract_seconds.py) reads a `caffelite train` log.

The parser is re-implemented here with the same regexes, the same line-by-line state machine and the same
date handling, including its failure modes: after the first "Iteration N" every line goes through the date
extraction, where a line that is not glog-shaped is skipped on ValueError but crashes it with IndexError.
"""

import math
import os
import re
import subprocess
import sys
from datetime import datetime

import pytest

from cli_helpers import tiny_net, write_model

ITERATION = re.compile(r"Iteration (\d+)")
TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def line_datetime(line, year):
    """`I0210 13:39:22.381027 ...`: month and day from the first word, the time of day from the second."""
    words = line.strip().split()
    month, day = int(words[0][1:3]), int(words[0][3:])
    clock, _, micro = words[1].rpartition(".")
    hour, minute, second = (int(part) for part in clock.split(":"))
    return datetime(year, month, day, hour, minute, second, int(micro))


def start_time(lines, year):
    """The date of the first line that mentions `Solving` (the parser's time origin)."""
    for line in lines:
        if "Solving" in line:
            return line_datetime(line, year)
    return None


def parse_log(path):
    year = datetime.fromtimestamp(os.path.getctime(path)).year
    with open(path) as log:
        lines = iter(log.read().splitlines(keepends=True))
    origin = start_time(lines, year)  # consumes the lines up to and including the `Solving` one
    assert origin is not None, "no 'Solving' line"
    previous, iteration, rate = origin, -1, math.nan
    tables = {"train": ([], [None]), "test": ([], [None])}
    for line in lines:
        found = ITERATION.search(line)
        if found:
            iteration = float(found.group(1))
        if iteration == -1:
            continue
        try:
            when = line_datetime(line, year)
        except ValueError:
            continue
        if when.month < previous.month:  # the log ran into a new year
            year += 1
            when = line_datetime(line, year)
        previous = when
        seconds = (when - origin).total_seconds()
        found = LEARNING_RATE.search(line)
        if found:
            rate = float(found.group(1))
        for kind, pattern in (("train", TRAIN_OUTPUT), ("test", TEST_OUTPUT)):
            rows, current = tables[kind]
            current[0] = add_output(pattern, line, rows, current[0], iteration, seconds, rate)
    results = []
    for rows, _ in tables.values():
        if len(rows) > 1:  # the first rows come before any lr line: they take the second row's rate
            rows[0]["LearningRate"] = rows[1]["LearningRate"]
        results.append(rows)
    return results


def add_output(pattern, line, rows, row, iteration, seconds, rate):
    """One column into the open row (a new row when the iteration changes); a row as wide as the first closes."""
    found = pattern.search(line)
    if found:
        if row is None or row["NumIters"] != iteration:
            if row is not None:
                rows.append(row)
            row = {"NumIters": iteration, "Seconds": seconds, "LearningRate": rate}
        row[found.group(2)] = float(found.group(3))
    if row is not None and rows and len(row) == len(rows[0]):
        rows.append(row)
        row = None
    return row




@pytest.fixture(scope="module")
def training_log(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parse_log")
    write_model(
        folder, tiny_net(),
        'test_iter: 2 test_interval: 10 base_lr: 0.5 lr_policy: "step" gamma: 0.5 '
        f'stepsize: 10 display: 5 max_iter: 20 snapshot: 10 snapshot_prefix: "{folder}/tiny" random_seed: 1',
    )
    log_path = folder / "caffe.INFO"
    with open(log_path, "w") as log_file:
        result = subprocess.run(
            [sys.executable, "-m", "caffelite_tools.main", "train", "-solver", str(folder / "solver.prototxt")],
            stdout=subprocess.DEVNULL, stderr=log_file, timeout=120,
        )
    assert result.returncode == 0, log_path.read_text()
    return log_path


def test_train_rows(training_log):
    train, _ = parse_log(training_log)
    assert [row["NumIters"] for row in train] == [0, 5, 10, 15]
    assert all(set(row) == {"NumIters", "Seconds", "LearningRate", "loss"} for row in train)
    seconds = [row["Seconds"] for row in train]
    assert seconds == sorted(seconds) and seconds[0] >= 0
    # The lr line of an iteration comes after its outputs (as in Caffe), so each row shows the previous rate.
    assert [row["LearningRate"] for row in train] == [0.5, 0.5, 0.5, 0.25]
    assert all(math.isfinite(row["loss"]) and row["loss"] >= 0 for row in train)
    assert train[-1]["loss"] < train[0]["loss"]


def test_test_rows(training_log):
    train, test = parse_log(training_log)
    assert [row["NumIters"] for row in test] == [0, 10, 20]
    assert all(set(row) == {"NumIters", "Seconds", "LearningRate", "acc", "loss"} for row in test)
    seconds = [row["Seconds"] for row in test]
    assert seconds == sorted(seconds) and seconds[-1] >= train[-1]["Seconds"]
    assert [row["LearningRate"] for row in test] == [0.5, 0.5, 0.25]
    assert test[-1]["acc"] == 1.0 and 0 <= test[0]["acc"] <= 1  # all labels are 1: learnable
    assert test[-1]["loss"] < test[0]["loss"]


def test_every_line_is_glog_shaped(training_log):
    """The parser dates every line after the first iteration; only glog lines survive that."""
    lines = training_log.read_text().splitlines()
    assert lines and all(re.match(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \S+:\d+\] ", line) for line in lines)
    assert "\r" not in training_log.read_text()
