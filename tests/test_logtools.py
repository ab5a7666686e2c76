"""caffelite.logtools: Caffe's parse_log.py rules on a real `caffelite train` log and on hand-written logs,
the CSV files it writes, and the charts of plot_training_log.py.example."""

import math

import pytest
from PIL import Image

from caffelite import logtools
from caffelite.errors import CaffeliteError, FileFormatError
from logtools_helpers import write_training_log


@pytest.fixture(scope="module")
def training_log(tmp_path_factory):
    return write_training_log(tmp_path_factory.mktemp("logtools"))


def glog(stamp, message):
    """One glog line: stamp is 'MMDD HH:MM:SS.micro'."""
    return f"I{stamp}  4242 solver.cpp:204] {message}\n"


def write_log(folder, lines, name="run.log"):
    path = folder / name
    path.write_text("".join(lines))
    return path


# ---------------------------------------------------------------- a real training log

def test_train_rows_of_a_training_run(training_log):
    train, _ = logtools.parse_log(training_log)
    assert [row["NumIters"] for row in train] == [0, 5, 10, 15]  # every `display` iterations
    assert all(list(row) == ["NumIters", "Seconds", "LearningRate", "loss"] for row in train)
    # Each iteration's "lr =" line follows its outputs, so a row shows the rate in force before it.
    assert [row["LearningRate"] for row in train] == [0.5, 0.5, 0.5, 0.25]
    seconds = [row["Seconds"] for row in train]
    assert seconds[0] >= 0 and seconds == sorted(seconds)
    assert all(math.isfinite(row["loss"]) for row in train) and train[-1]["loss"] < train[0]["loss"]


def test_test_rows_of_a_training_run(training_log):
    train, test = logtools.parse_log(training_log)
    assert [row["NumIters"] for row in test] == [0, 10, 20]  # every test_interval, and after the last iteration
    assert all(list(row) == ["NumIters", "Seconds", "LearningRate", "acc", "loss"] for row in test)
    assert [row["LearningRate"] for row in test] == [0.5, 0.5, 0.25]
    seconds = [row["Seconds"] for row in test]
    assert seconds == sorted(seconds) and seconds[-1] >= train[-1]["Seconds"]
    assert test[-1]["acc"] == 1.0 and test[-1]["loss"] < test[0]["loss"]  # all labels are 1: learnable


def test_csv_files_of_a_training_run(training_log, tmp_path):
    train, test = logtools.parse_log(training_log)
    written = logtools.save_csv_files(training_log, tmp_path, train, test)
    assert written == [(str(tmp_path / "caffe.INFO.train"), True), (str(tmp_path / "caffe.INFO.test"), True)]
    train_lines = (tmp_path / "caffe.INFO.train").read_bytes().split(b"\r\n")
    test_lines = (tmp_path / "caffe.INFO.test").read_bytes().split(b"\r\n")
    assert train_lines[0] == b"NumIters,Seconds,LearningRate,loss"
    assert test_lines[0] == b"NumIters,Seconds,LearningRate,acc,loss"
    assert len(train_lines) == 1 + 4 + 1 and train_lines[-1] == b""  # header, rows, and the final CRLF
    assert train_lines[2].startswith(b"5.0,") and test_lines[3].startswith(b"20.0,")
    assert float(test_lines[3].split(b",")[2]) == 0.25


def test_extract_seconds_of_a_training_run(training_log, tmp_path):
    seconds = logtools.extract_seconds(training_log, tmp_path / "seconds.txt")
    iteration_lines = [line for line in training_log.read_text().splitlines() if "Iteration" in line]
    assert len(seconds) == len(iteration_lines) >= 12  # display, lr and testing lines of iterations 0-20
    assert seconds == sorted(seconds) and seconds[0] >= 0
    written = (tmp_path / "seconds.txt").read_text().splitlines()
    assert written == [f"{value:f}" for value in seconds] and all(len(line.split(".")[1]) == 6 for line in written)


# ---------------------------------------------------------------- parsing rules, on hand-written logs

def test_times_count_from_solving_and_roll_over_new_year(tmp_path):
    path = write_log(tmp_path, [
        glog("1231 23:59:50.000000", "Solving net"),
        glog("1231 23:59:55.500000", "Iteration 0, loss = 2"),
        glog("1231 23:59:55.600000", "    Train net output #0: loss = 2"),
        glog("0101 00:00:10.000000", "Iteration 10, loss = 1"),
        glog("0101 00:00:10.250000", "    Train net output #0: loss = 1"),
    ])
    train, test = logtools.parse_log(path, year=2021)
    assert [row["Seconds"] for row in train] == [5.6, 20.25]
    assert test == []


def test_learning_rate_is_carried_and_the_first_row_takes_the_second_rows(tmp_path):
    path = write_log(tmp_path, [
        glog("0301 10:00:00.000000", "Solving net"),
        glog("0301 10:00:01.000000", "Iteration 0, loss = 3"),
        glog("0301 10:00:01.000000", "    Train net output #0: loss = 3"),
        glog("0301 10:00:01.000000", "Iteration 0, lr = 0.01"),
        glog("0301 10:00:02.000000", "Iteration 100, loss = 2"),
        glog("0301 10:00:02.000000", "    Train net output #0: loss = 2"),
        glog("0301 10:00:02.000000", "Iteration 100, lr = 1e-3"),
        glog("0301 10:00:03.000000", "Iteration 200, loss = 1"),
        glog("0301 10:00:03.000000", "    Train net output #0: loss = 1"),
    ])
    train, _ = logtools.parse_log(path, year=2022)
    assert [row["LearningRate"] for row in train] == [0.01, 0.01, 0.001]
    assert [row["loss"] for row in train] == [3, 2, 1]


def test_lines_before_the_first_iteration_and_odd_lines_are_skipped(tmp_path):
    path = write_log(tmp_path, [
        "a banner line\n",
        glog("0301 10:00:00.000000", "Train net output #0: loss = 9"),  # before "Solving": never read
        glog("0301 10:00:00.000000", "Solving net"),
        glog("0301 10:00:00.100000", "    Test net output #0: acc = 0.9"),  # before any "Iteration"
        glog("0301 10:00:01.000000", "Iteration 0, Testing net (#0)"),
        "\n",
        "Traceback (most recent call last):\n",
        "Test net output #0: acc = 0.7\n",  # no timestamp: skipped
        glog("0301 10:00:01.000000", "    Test net output #0: acc = 0.5"),
        glog("0301 10:00:01.000000", "    Test net output #1: loss = 1.5 (* 1 = 1.5 loss)"),
    ])
    train, test = logtools.parse_log(path, year=2022)
    assert train == [] and test == []  # one row and an open one: a row only counts as full against the first
    path = write_log(tmp_path, [
        *path.read_text().splitlines(keepends=True),
        glog("0301 10:00:05.000000", "Iteration 10, Testing net (#0)"),
        glog("0301 10:00:05.000000", "    Test net output #0: acc = 0.75"),
        glog("0301 10:00:05.000000", "    Test net output #1: loss = 0.5 (* 1 = 0.5 loss)"),
    ], name="longer.log")
    _, test = logtools.parse_log(path, year=2022)
    # The open row is pushed when iteration 10 starts; the new row is full at its second output.
    assert [(row["NumIters"], row["Seconds"], row["acc"], row["loss"]) for row in test] == [
        (0, 1.0, 0.5, 1.5), (10, 5.0, 0.75, 0.5),
    ]
    assert all(math.isnan(row["LearningRate"]) for row in test)  # no "lr =" line anywhere


def test_a_log_without_solving_line_is_refused(tmp_path):
    path = write_log(tmp_path, [glog("0301 10:00:00.000000", "Iteration 0, loss = 1")])
    with pytest.raises(FileFormatError, match="no 'Solving' line"):
        logtools.parse_log(path)
    with pytest.raises(CaffeliteError, match="no such log file"):
        logtools.parse_log(tmp_path / "missing.log")


# ---------------------------------------------------------------- CSV writing

ROWS = [
    {"NumIters": 0.0, "Seconds": 0.5, "LearningRate": 0.1, "loss": 2.0},
    {"NumIters": 10.0, "Seconds": 1.25, "LearningRate": 0.1, "loss": 1.5},
]


def test_write_csv_with_a_tab_delimiter(tmp_path):
    for delimiter in ("\t", "\\t"):
        assert logtools.write_csv(ROWS, tmp_path / "t.csv", delimiter=delimiter)
        assert (tmp_path / "t.csv").read_bytes() == (
            b"NumIters\tSeconds\tLearningRate\tloss\r\n0.0\t0.5\t0.1\t2.0\r\n10.0\t1.25\t0.1\t1.5\r\n"
        )


def test_write_csv_skips_empty_tables_and_refuses_long_delimiters(tmp_path):
    assert logtools.write_csv([], tmp_path / "empty.csv") is False
    assert not (tmp_path / "empty.csv").exists()
    with pytest.raises(CaffeliteError, match="one character"):
        logtools.write_csv(ROWS, tmp_path / "x.csv", delimiter=";;")
    with pytest.raises(CaffeliteError, match="does not exist"):
        logtools.save_csv_files("run.log", tmp_path / "nowhere", ROWS, [])


# ---------------------------------------------------------------- plots

def test_chart_types_are_caffes():
    assert [logtools.chart_description(i) for i in (0, 1, 4, 7)] == [
        "Test accuracy  vs. Iters", "Test accuracy  vs. Seconds", "Train learning rate  vs. Iters",
        "Train loss  vs. Seconds",
    ]
    assert len(logtools.CHART_TYPES) == 8
    with pytest.raises(CaffeliteError, match="not a valid chart type"):
        logtools.chart_description(8)


def assert_drawn_png(path, min_size=(200, 150)):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > min_size[0] and image.height > min_size[1]
        colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 10  # axes, text and a curve, not a blank canvas


@pytest.mark.parametrize("chart_type", range(8))
def test_every_chart_type_draws_a_png(training_log, tmp_path, chart_type):
    out = tmp_path / f"chart{chart_type}.png"
    logtools.plot_chart(chart_type, out, [training_log])
    assert_drawn_png(out)


def test_plot_log_draws_all_quantities_of_several_logs(training_log, tmp_path):
    other = tmp_path / "copy.log"
    other.write_text(training_log.read_text())
    out = logtools.plot_log([training_log, other], tmp_path / "all.png", x="seconds")
    with Image.open(out) as image:
        assert image.height > image.width  # four charts, stacked
    assert_drawn_png(out, min_size=(400, 600))


def test_plot_log_refusals(training_log, tmp_path):
    with pytest.raises(CaffeliteError, match=r"must end in \.png"):
        logtools.plot_log([training_log], tmp_path / "curves.jpg")
    with pytest.raises(CaffeliteError, match="x must be one of"):
        logtools.plot_log([training_log], tmp_path / "curves.png", x="epochs")
    no_test = write_log(tmp_path, [
        glog("0301 10:00:00.000000", "Solving net"),
        glog("0301 10:00:01.000000", "Iteration 0, loss = 3"),
        glog("0301 10:00:01.000000", "    Train net output #0: loss = 3"),
    ])
    with pytest.raises(CaffeliteError, match="no Test accuracy values"):
        logtools.plot_chart(0, tmp_path / "acc.png", [no_test])
    assert not (tmp_path / "acc.png").exists()
