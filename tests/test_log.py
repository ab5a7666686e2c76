"""Log lines in glog's format, the one Caffe's tools/extra/parse_log.py and extract_seconds.py read."""

import io
import logging
import re

from caffelite import log as glog


def test_lines_have_the_glog_prefix(monkeypatch):
    stream = io.StringIO()
    logger = glog.configure(stream)
    try:
        logger.info("Iteration %d, lr = %s", 100, glog.number(0.00992565))
        logger.warning("careful")
    finally:
        glog.configure()  # back to stderr
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ test_log\.py:\d+\] Iteration 100, lr = 0\.00992565", first)
    assert second.startswith("W") and second.endswith("] careful")
    # what extract_seconds.py does with a line: month/day from the first word, time from the second
    stamp = first.split()
    assert 1 <= int(stamp[0][1:3]) <= 12 and re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6}", stamp[1])


def test_configure_is_idempotent():
    logger = glog.configure(io.StringIO())
    glog.configure(io.StringIO())
    ours = [h for h in logger.handlers if getattr(h, "_caffelite_glog", False)]
    glog.configure()
    assert len(ours) == 1 and logger.level == logging.INFO


def test_numbers_print_like_caffes_iostreams():
    assert [glog.number(v) for v in (0.01, 1e-05, 100.0, 0.973, 2.302585093)] == [
        "0.01", "1e-05", "100", "0.973", "2.30259",
    ]
