"""A live status line for a person watching training in a terminal.

    iter 1200/10000 12.0% | 85.3 iter/s | ETA 0:01:43 | loss 0.1234

It sits on the terminal's last line, below the glog lines, and is redrawn in place. The glog handler
(caffelite.log.GlogHandler) erases it before each log line and draws it again after, so log lines stay whole.
It is shown only on a terminal: a log going to a file, a pipe or CI gets the glog lines and nothing else.
The text avoids the word "Iteration" so that even a captured terminal session does not confuse Caffe's parse_log.py.
"""

import os
import time
import warnings
from collections import deque

from caffelite.log import glog_handler

MODES = ("auto", "on", "off")


def wanted(mode, stream):
    """auto: only on an interactive terminal (not TERM=dumb); on: always; off: never."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode == "on"
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def attach(solver, mode="auto", handler=None):
    """Add a ProgressDisplay to `solver` when `mode` and the log's stream call for one; returns it, or None."""
    handler = handler or glog_handler()
    if handler is None or not wanted(mode, handler.stream):
        return None
    display = ProgressDisplay(solver, handler)
    solver.add_callback(display)
    display.route_warnings()
    return display


class ProgressDisplay:
    """Solver callback: after each iteration's gradients, refresh the status line (at most every min_interval s)."""

    def __init__(self, solver, handler, clock=time.monotonic, min_interval=0.2, window=50):
        self.solver = solver
        self.handler = handler
        self.clock = clock
        self.min_interval = min_interval
        self._marks = deque(maxlen=window)  # (time, iterations done): the rate is taken over this window
        self._drawn_at = None
        self._showwarning = None

    def on_start(self):
        if not self._marks:
            self._marks.append((self.clock(), self.solver.iter))

    def on_gradients_ready(self):
        # Called before the update, so the iteration in progress counts as done.
        now = self.clock()
        self._marks.append((now, self.solver.iter + 1))
        if self._drawn_at is None or now - self._drawn_at >= self.min_interval:
            self.handler.set_status(self.text())
            self._drawn_at = now

    def text(self):
        done = self._marks[-1][1] if self._marks else self.solver.iter
        total = self.solver.param.max_iter
        parts = [f"iter {done}/{total}" + (f" {100.0 * done / total:.1f}%" if total else "")]
        rate = self.rate()
        if rate:
            parts.append(f"{_rate_text(rate)} iter/s")
            if total > done:
                parts.append(f"ETA {_duration((total - done) / rate)}")
        parts.append(f"loss {self.solver.smoothed_loss:.4g}")
        return " | ".join(parts)

    def rate(self):
        """Iterations per second over the recent window (test passes and snapshots included), or None."""
        if len(self._marks) < 2:
            return None
        (first_time, first_done), (last_time, last_done) = self._marks[0], self._marks[-1]
        elapsed = last_time - first_time
        return (last_done - first_done) / elapsed if elapsed > 0 else None

    def route_warnings(self):
        """Until close(): Python warnings (numpy overflow, ...) are written above the status line, not after it."""
        if self._showwarning is None:
            self._showwarning = warnings.showwarning
            warnings.showwarning = self._show_warning

    def _show_warning(self, message, category, filename, lineno, file=None, line=None):
        if file is not None:
            self._showwarning(message, category, filename, lineno, file, line)
            return
        self.handler.write_above_status(warnings.formatwarning(message, category, filename, lineno, line))

    def close(self):
        """Erase the status line and give warnings back (call when training ends, before printing anything else)."""
        if self._showwarning is not None:
            warnings.showwarning, self._showwarning = self._showwarning, None
        self.handler.clear_status()


def _rate_text(rate):
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


def _duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
