"""The live status line: drawn on a terminal between whole glog lines, absent from files and pipes."""

import io
import os
import re
import subprocess
import sys
import tty
import warnings
from types import SimpleNamespace

import pytest

from caffelite import log as glog
from caffelite import progress
from cli_helpers import tiny_net, write_model

GLOG_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.]+:\d+\] .*")
STATUS = re.compile(r"iter \d+/\d+( \d+\.\d%)?( \| [\d.e+]+ iter/s)?( \| ETA \d+:\d\d:\d\d)? \| loss \S+")


class TerminalStream(io.StringIO):
    """What the handler sees of a terminal: a stream whose isatty() is True."""

    def isatty(self):
        return True


def check_screen(raw):
    """Every newline-ended line holds one whole glog line; status text only ever sits on the last line.

    Checked twice: on the raw bytes (after the last '\\r' of a line comes the complete log line, before it only
    status text or the spaces that erase it) and on what a terminal would show ('\\r' returns to column 0 and
    later characters overwrite earlier ones).
    """
    *lines, last = raw.split("\n")
    statuses = []
    for line in lines:
        *before, visible = line.split("\r")
        assert GLOG_LINE.fullmatch(visible), repr(line)
        for segment in before:
            assert segment.strip() == "" or STATUS.fullmatch(segment), repr(line)
            statuses += [segment] if segment.strip() else []
    for segment in last.split("\r"):
        assert segment.strip() == "" or STATUS.fullmatch(segment), repr(last)
        statuses += [segment] if segment.strip() else []
    for line in lines:
        assert GLOG_LINE.fullmatch(render(line).rstrip()), repr(line)
    return statuses


def render(line):
    cells, column = [], 0
    for char in line:
        if char == "\r":
            column = 0
            continue
        if column < len(cells):
            cells[column] = char
        else:
            cells.append(char)
        column += 1
    return "".join(cells)


@pytest.fixture
def terminal():
    stream = TerminalStream()
    logger = glog.configure(stream)
    yield stream, logger, glog.glog_handler()
    glog.configure()


def fake_solver(max_iter):
    return SimpleNamespace(iter=0, param=SimpleNamespace(max_iter=max_iter), smoothed_loss=0.0)


class StepClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_status_line_shows_progress_rate_eta_and_loss(terminal):
    stream, logger, handler = terminal
    solver, clock = fake_solver(10), StepClock()
    display = progress.ProgressDisplay(solver, handler, clock=clock, min_interval=0)
    for iteration in range(4):
        display.on_start()
        clock.now += 0.5
        solver.smoothed_loss = 2.0 / (iteration + 1)
        display.on_gradients_ready()
        solver.iter += 1
    status = "iter 4/10 40.0% | 2 iter/s | ETA 0:00:03 | loss 0.5"
    assert handler.status == status
    display.close()
    assert handler.status == "" and stream.getvalue().endswith(status + "\r" + " " * len(status) + "\r")


def test_log_lines_are_never_cut_by_the_status_line(terminal):
    stream, logger, handler = terminal
    solver, clock = fake_solver(40), StepClock()
    display = progress.ProgressDisplay(solver, handler, clock=clock, min_interval=0)
    logger.info("Solving tiny")
    for iteration in range(40):
        display.on_start()
        clock.now += 0.01
        solver.smoothed_loss = 1.0 / (iteration + 1)
        display.on_gradients_ready()
        if iteration % 5 == 0:
            logger.info("Iteration %d, loss = %s", iteration, glog.number(solver.smoothed_loss))
            logger.info("    Train net output #0: loss = %s", glog.number(solver.smoothed_loss))
        solver.iter += 1
    display.close()
    statuses = check_screen(stream.getvalue())
    assert "iter 40/40 100.0%" in statuses[-1] and stream.getvalue().count("\n") == 17


def test_python_warnings_go_above_the_status_line(terminal):
    stream, logger, handler = terminal
    solver = fake_solver(10)
    display = progress.ProgressDisplay(solver, handler, clock=StepClock(), min_interval=0)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        display.route_warnings()
        display.on_start()
        display.on_gradients_ready()
        warnings.warn("overflow encountered in exp", RuntimeWarning)
        display.close()
        assert warnings.showwarning is not display._show_warning  # given back
    lines = stream.getvalue().split("\n")
    shown = [render(line).rstrip() for line in lines[:-1]]
    assert len(shown) == 2 and shown[0].endswith("RuntimeWarning: overflow encountered in exp")
    assert STATUS.fullmatch(lines[0].split("\r")[0])  # the status was up, then erased before the warning


def test_redraws_are_throttled_but_the_first_is_immediate(terminal):
    stream, logger, handler = terminal
    solver, clock = fake_solver(100), StepClock()
    display = progress.ProgressDisplay(solver, handler, clock=clock, min_interval=1.0)
    display.on_start()
    display.on_gradients_ready()
    assert handler.status.startswith("iter 1/100")
    solver.iter, clock.now = 1, clock.now + 0.5
    display.on_gradients_ready()
    assert handler.status.startswith("iter 1/100")  # too soon to redraw
    solver.iter, clock.now = 2, clock.now + 0.6
    display.on_gradients_ready()
    assert handler.status.startswith("iter 3/100")


def test_status_is_cut_to_the_terminal_width(terminal, monkeypatch):
    stream, logger, handler = terminal
    monkeypatch.setattr(handler, "_columns", lambda: 20)
    handler.set_status("x" * 50)
    assert handler.status == "x" * 19


def test_only_terminals_get_a_status_line(monkeypatch, tmp_path):
    monkeypatch.setenv("TERM", "xterm")
    with open(tmp_path / "log", "w") as file:
        assert not progress.wanted("auto", file) and progress.wanted("on", file)
    assert progress.wanted("auto", TerminalStream()) and not progress.wanted("off", TerminalStream())
    monkeypatch.setenv("TERM", "dumb")  # a terminal that cannot redraw a line
    assert not progress.wanted("auto", TerminalStream())
    with pytest.raises(ValueError):
        progress.wanted("sometimes", TerminalStream())


def test_attach_does_nothing_when_the_log_goes_to_a_file(tmp_path):
    with open(tmp_path / "log", "w") as file:
        glog.configure(file)
        try:
            added = []
            solver = SimpleNamespace(add_callback=added.append)
            assert progress.attach(solver, "auto") is None and added == []
        finally:
            glog.configure()


# -- end to end, through the `caffelite train` command --------------------------------------------
@pytest.fixture
def solver_file(tmp_path):
    return write_model(tmp_path, tiny_net(batch=8, accuracy=False),
                       'base_lr: 0.1 lr_policy: "fixed" display: 10 max_iter: 60 snapshot_after_train: false '
                       'random_seed: 1')


def train_on_a_terminal(solver, *flags):
    """Run `caffelite train` with stderr on a pseudo-terminal (raw, so '\\n' arrives as written); its output."""
    controller, terminal_end = os.openpty()
    tty.setraw(terminal_end)
    env = dict(os.environ, TERM="xterm")
    process = subprocess.Popen(
        [sys.executable, "-m", "caffelite_tools.main", "train", "-solver", str(solver), *flags],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal_end, env=env,
    )
    os.close(terminal_end)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    assert process.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode()


def test_train_on_a_terminal_draws_the_status_between_whole_log_lines(solver_file):
    output = train_on_a_terminal(solver_file)
    statuses = check_screen(output)
    assert statuses and all("/60" in status for status in statuses)
    assert output.endswith("\r") and re.search(r"\] Optimization Done\.\n", output)  # erased at the end


def test_progress_off_on_a_terminal_writes_only_log_lines(solver_file):
    output = train_on_a_terminal(solver_file, "-progress", "off")
    assert "\r" not in output and check_screen(output) == []


def test_train_to_a_file_writes_only_log_lines(solver_file, tmp_path):
    with open(tmp_path / "train.log", "w") as log_file:
        result = subprocess.run(
            [sys.executable, "-m", "caffelite_tools.main", "train", "--solver", str(solver_file)],
            stderr=log_file, stdout=subprocess.DEVNULL, env=dict(os.environ, TERM="xterm"), timeout=120,
        )
    log = (tmp_path / "train.log").read_text()
    assert result.returncode == 0, log
    assert "\r" not in log and "ETA" not in log and " | loss" not in log
    assert all(GLOG_LINE.fullmatch(line) for line in log.splitlines())
