"""Caffe's training-log tools (tools/extra/parse_log.py, extract_seconds.py, plot_training_log.py.example).

parse_log reads a glog-format training log (Caffe's or caffelite's) into two tables, one row per iteration that
printed net outputs: `train` rows from "Train net output #k: name = v" lines, `test` rows from
"Test net output #k: name = v" lines. Each row starts with NumIters, Seconds (since the "Solving" line) and
LearningRate (the last "lr = " value seen), then the outputs in the order they appear. The rules are Caffe's:

- nothing is read before the "Solving" line (the time origin), and nothing but iterations before the first
  "Iteration N";
- glog timestamps carry no year: the year is the log file's creation year, plus one each time the month goes
  backwards (a run across New Year);
- a row is complete when it has as many columns as the first row; a row left incomplete is kept when the next
  iteration starts;
- the first row usually precedes every "lr = " line: it takes the second row's learning rate.

Lines that are not glog-shaped are skipped (Caffe's parser crashes on some of them).

write_csv / save_csv_files write the tables as parse_log.py does; iteration_seconds / extract_seconds are
extract_seconds.py; plot_log / plot_chart draw the charts of plot_training_log.py.example (matplotlib, no display).
"""

import csv
import math
import os
import re
from datetime import datetime

from caffelite.errors import CaffeliteError, FileFormatError

ITERATION = re.compile(r"Iteration (\d+)")
TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")

# The first three columns of every table, in parse_log.py's order; the net's outputs follow.
COLUMNS = ("NumIters", "Seconds", "LearningRate")


# ---------------------------------------------------------------- parsing

def parse_log(path, year=None):
    """(train_rows, test_rows): lists of dicts keyed by COLUMNS then output names, as parse_log.py returns them.

    `year` is the year of the first timestamps (default: the year the log file was created, as in Caffe).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CaffeliteError(f"{path}: no such log file")
    if year is None:
        year = datetime.fromtimestamp(os.path.getctime(path)).year
    with open(path, errors="replace") as lines:
        origin = _start_time(path, lines, year)  # reads up to and including the "Solving" line
        return _read_rows(lines, origin, year)


def iteration_seconds(path, year=None):
    """Seconds since the "Solving" line of every glog line that mentions "Iteration" (Caffe's extract_seconds.py)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CaffeliteError(f"{path}: no such log file")
    if year is None:
        year = datetime.fromtimestamp(os.path.getctime(path)).year
    with open(path, errors="replace") as log:
        lines = log.readlines()
    origin = previous = _start_time(path, iter(lines), year)
    seconds = []
    for line in lines:  # from the top, as extract_seconds.py reads them
        if "Iteration" not in line:
            continue
        try:
            when = log_datetime(line, year)
            if when.month < previous.month:
                year += 1
                when = log_datetime(line, year)
        except ValueError:
            continue
        previous = when
        seconds.append((when - origin).total_seconds())
    return seconds


def extract_seconds(log_path, output_path, year=None):
    """Write iteration_seconds(log_path) to output_path, one '%f' value a line, as extract_seconds.py does."""
    seconds = iteration_seconds(log_path, year)
    with open(output_path, "w") as out:
        out.writelines(f"{value:f}\n" for value in seconds)
    return seconds


def log_datetime(line, year):
    """The time of a glog line, `I0210 13:39:22.381027 25210 solver.cpp:204] ...`; ValueError if it has none."""
    words = line.split()
    if len(words) < 2 or len(words[0]) < 5:
        raise ValueError(f"not a glog line: {line!r}")
    month, day = int(words[0][1:3]), int(words[0][3:])
    clock, dot, micro = words[1].rpartition(".")
    if not dot:
        raise ValueError(f"not a glog time: {words[1]!r}")
    hour, minute, second = (int(part) for part in clock.split(":"))
    return datetime(year, month, day, hour, minute, second, int(micro))


def _start_time(path, lines, year):
    for line in lines:
        if "Solving" in line:
            try:
                return log_datetime(line, year)
            except ValueError:
                raise FileFormatError(f"{path}: the 'Solving' line has no glog timestamp: {line.strip()!r}") from None
    raise FileFormatError(f"{path}: no 'Solving' line: not a Caffe training log (its times count from that line)")


def _read_rows(lines, origin, year):
    train, test = _Table(TRAIN_OUTPUT), _Table(TEST_OUTPUT)
    iteration, rate, previous = -1, math.nan, origin
    for line in lines:
        found = ITERATION.search(line)
        if found:
            iteration = float(found.group(1))
        if iteration == -1:
            continue
        try:
            when = log_datetime(line, year)
            if when.month < previous.month:  # the run went past New Year
                year += 1
                when = log_datetime(line, year)
        except ValueError:
            continue
        previous = when
        seconds = (when - origin).total_seconds()
        found = LEARNING_RATE.search(line)
        if found:
            rate = float(found.group(1))
        train.read(line, iteration, seconds, rate)
        test.read(line, iteration, seconds, rate)
    return train.finish(), test.finish()


class _Table:
    """The rows of one kind of output (train or test), filled line by line."""

    def __init__(self, pattern):
        self.pattern = pattern
        self.rows = []
        self.open_row = None

    def read(self, line, iteration, seconds, rate):
        found = self.pattern.search(line)
        if found:
            if self.open_row is None or self.open_row["NumIters"] != iteration:
                if self.open_row is not None:  # a new iteration began before this row filled up
                    self.rows.append(self.open_row)
                self.open_row = {"NumIters": iteration, "Seconds": seconds, "LearningRate": rate}
            self.open_row[found.group(2)] = float(found.group(3))
        # Caffe checks for a full row after every line, output or not.
        if self.open_row is not None and self.rows and len(self.open_row) == len(self.rows[0]):
            self.rows.append(self.open_row)
            self.open_row = None

    def finish(self):
        """The rows; an open row at the end of the log is dropped, as in Caffe."""
        if len(self.rows) > 1:
            self.rows[0]["LearningRate"] = self.rows[1]["LearningRate"]
        return self.rows


# ---------------------------------------------------------------- CSV files

def write_csv(rows, path, delimiter=","):
    """Write `rows` as parse_log.py does (csv excel dialect, so lines end in CRLF); False if there is nothing to write.

    The header is COLUMNS then the output names in order of first appearance; values are Python's str of the float
    (NumIters 100 is written `100.0`, as Caffe's parser writes it).
    """
    delimiter = _delimiter(delimiter)
    if not rows:
        return False
    names = list(dict.fromkeys(name for row in rows for name in row))
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=names, dialect=csv.excel, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return True


def save_csv_files(log_path, output_dir, train_rows, test_rows, delimiter=","):
    """Write output_dir/<log name>.train and .test; a list of (path, written) (an empty table writes no file)."""
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        raise CaffeliteError(f"{output_dir}: the output directory does not exist")
    base = os.path.join(output_dir, os.path.basename(os.fspath(log_path)))
    return [(base + suffix, write_csv(rows, base + suffix, delimiter))
            for suffix, rows in ((".train", train_rows), (".test", test_rows))]


def _delimiter(text):
    text = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(text) != 1:
        raise CaffeliteError(f"delimiter must be one character (or '\\t'), got {text!r}")
    return text


# ---------------------------------------------------------------- plots

# The y quantities of plot_training_log.py.example, in its (sorted) order: "<table> <what>".
QUANTITIES = ("Test accuracy", "Test loss", "Train learning rate", "Train loss")
X_AXES = {"iters": ("Iters", "NumIters"), "seconds": ("Seconds", "Seconds")}
# Chart type numbers as plot_training_log.py.example defines them: every quantity against Iters, then Seconds.
CHART_TYPES = tuple((quantity, x) for quantity in QUANTITIES for x in X_AXES)


def chart_description(chart_type):
    """'Test accuracy  vs. Iters' for chart type 0 (Caffe's wording, two spaces included)."""
    quantity, x = _chart(chart_type)
    return f"{quantity}  vs. {X_AXES[x][0]}"


def plot_chart(chart_type, out_png, paths):
    """One chart of plot_training_log.py.example's numbered types (0-7), one curve per log."""
    quantity, x = _chart(chart_type)
    return plot_log(paths, out_png, x=x, quantities=(quantity,))


def plot_log(paths, out_png, x="iters", quantities=QUANTITIES):
    """Training curves of one or more logs as a PNG: one subplot per quantity, one curve per log.

    quantities: any of QUANTITIES. Accuracy and loss are the first output whose name contains 'acc' / 'loss'.
    """
    paths = [os.fspath(path) for path in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise CaffeliteError("plot_log: no log files given")
    if x not in X_AXES:
        raise CaffeliteError(f"plot_log: x must be one of {sorted(X_AXES)}, got {x!r}")
    unknown = [q for q in quantities if q not in QUANTITIES]
    if unknown or not quantities:
        raise CaffeliteError(f"plot_log: unknown quantities {unknown}; known: {list(QUANTITIES)}")
    out_png = os.fspath(out_png)
    if not out_png.lower().endswith(".png"):
        raise CaffeliteError(f"plot_log: the output file must end in .png, got {out_png!r}")
    tables = {path: dict(zip(("Train", "Test"), parse_log(path))) for path in paths}
    figure = _figure(len(quantities))
    drawn = 0
    for index, quantity in enumerate(quantities):
        axes = figure.add_subplot(len(quantities), 1, index + 1)
        drawn += _draw(axes, quantity, x, tables)
        axes.set_title(f"{quantity}  vs. {X_AXES[x][0]}")
    if not drawn:
        raise CaffeliteError(f"plot_log: no {', '.join(quantities)} values in {', '.join(paths)}")
    figure.tight_layout()
    figure.savefig(out_png, format="png")
    return out_png


def _chart(chart_type):
    if not 0 <= chart_type < len(CHART_TYPES):
        raise CaffeliteError(f"{chart_type} is not a valid chart type: use 0-{len(CHART_TYPES) - 1}")
    return CHART_TYPES[chart_type]


def _figure(subplots):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CaffeliteError("plot_log needs matplotlib: pip install 'caffelite[plot]'") from None
    figure = Figure(figsize=(8, 3.2 * subplots + 0.8), dpi=100)
    FigureCanvasAgg(figure)  # draws without a display, whatever pyplot's backend is
    return figure


def _draw(axes, quantity, x, tables):
    """One curve per log that has the quantity; how many were drawn."""
    x_label, x_column = X_AXES[x]
    kind, what = quantity.split(" ", 1)
    drawn = 0
    for path, by_kind in tables.items():
        rows = by_kind[kind]
        column = _column(rows, what)
        if column is None:
            continue
        points = [(row[x_column], row[column]) for row in rows if column in row]
        axes.plot(*zip(*points), label=_label(path), linewidth=0.75, marker="o", markersize=3)
        drawn += 1
    axes.set_xlabel(x_label)
    axes.set_ylabel(quantity)
    if drawn:
        upper = "loss" in what or "rate" in what  # falling curves: keep the legend out of their way
        axes.legend(loc="upper right" if upper else "lower right")
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    return drawn


def _column(rows, what):
    if not rows:
        return None
    if what == "learning rate":
        return "LearningRate"
    key = "acc" if what == "accuracy" else what
    names = dict.fromkeys(name for row in rows for name in row if name not in COLUMNS)
    return next((name for name in names if key in name.lower()), None)


def _label(path):
    name = os.path.basename(os.fspath(path))
    return name[:-len(".log")] if name.endswith(".log") else name
