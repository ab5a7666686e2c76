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


def configure(stream=None, level=logging.INFO):
    """Send the 'caffelite' logger to `stream` (stderr, like glog) in glog format; idempotent."""
    logger = logging.getLogger("caffelite")
    for handler in list(logger.handlers):
        if getattr(handler, "_caffelite_glog", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(GlogFormatter())
    handler._caffelite_glog = True
    logger.addHandler(handler)
    logger.setLevel(level)
    return logger


def number(value):
    """A number as Caffe's iostreams print it (6 significant digits): 0.00992565, 1e-05, 100."""
    return f"{value:.6g}"
