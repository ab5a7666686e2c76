"""Caffe's glog line format, so Caffe's log tools (tools/extra/parse_log.py) read caffelite's logs unchanged.

    I1122 13:39:22.381027 25210 solver.py:204] Iteration 100, lr = 0.00992565
"""

import logging
import os
import sys
import threading
from datetime import datetime

_LEVEL_LETTERS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E", logging.CRITICAL: "F"}


class GlogFormatter(logging.Formatter):
    """Level letter, MMDD HH:MM:SS.micro, thread id, file:line] message."""

    def format(self, record):
        stamp = datetime.fromtimestamp(record.created).strftime("%m%d %H:%M:%S.%f")
        letter = _LEVEL_LETTERS.get(record.levelno, "I")
        thread = threading.get_native_id() if record.thread == threading.get_ident() else os.getpid()
        prefix = f"{letter}{stamp} {thread:5d} {record.filename}:{record.lineno}] "
        return prefix + record.getMessage()


class GlogHandler(logging.StreamHandler):
    """A stream handler that shares its terminal line with a status line (see caffelite.progress).

    The status line is the text after the last newline, redrawn in place with '\r'. Before a log line is written
    it is erased, and after the log line it is drawn again, all under the handler's lock, so a log line is always
    whole and starts at the beginning of its own line. With no status line set, this is a plain StreamHandler.
    """

    _caffelite_glog = True

    def __init__(self, stream=None):
        super().__init__(stream)
        self._status = ""

    @property
    def status(self):
        return self._status

    def set_status(self, text):
        """Draw `text` (one line, cut to the terminal's width) in place of the current status line."""
        text = _fit(" ".join(str(text).split()), self._columns())
        self.acquire()
        try:
            if text != self._status:
                self.stream.write(self._erasure() + text)
                self._status = text
                self.flush()
        finally:
            self.release()

    def clear_status(self):
        """Erase the status line, leaving the cursor at the start of an empty line."""
        self.set_status("")

    def write_above_status(self, text):
        """Write `text` (ending in a newline) as if it were a log line: above the status line, never inside it."""
        self.acquire()
        try:
            self.stream.write(self._erasure() + text + self._status)  # one write: erase, text, redraw
            self.flush()
        finally:
            self.release()

    def emit(self, record):
        if not self._status:
            super().emit(record)
            return
        try:
            self.write_above_status(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _erasure(self):
        # Spaces rather than an ANSI erase sequence: every terminal understands them.
        return "\r" + " " * len(self._status) + "\r" if self._status else ""

    def _columns(self):
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        return columns or 80


def _fit(text, columns):
    """At most columns - 1 characters, so the line never wraps (a wrapped line cannot be erased with '\r')."""
    return text[: max(columns - 1, 1)]


def configure(stream=None, level=logging.INFO):
    """Send the 'caffelite' logger to `stream` (stderr, like glog) in glog format; idempotent."""
    logger = logging.getLogger("caffelite")
    for handler in list(logger.handlers):
        if getattr(handler, "_caffelite_glog", False):
            logger.removeHandler(handler)
    handler = GlogHandler(stream or sys.stderr)
    handler.setFormatter(GlogFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    return logger


def glog_handler(logger_name="caffelite"):
    """The GlogHandler `configure` installed, or None if logging was not configured by caffelite."""
    for handler in logging.getLogger(logger_name).handlers:
        if isinstance(handler, GlogHandler):
            return handler
    return None


def number(value):
    """A number as Caffe's iostreams print it (6 significant digits): 0.00992565, 1e-05, 100."""
    return f"{value:.6g}"
