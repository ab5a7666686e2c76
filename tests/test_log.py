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


def test_without_a_status_line_the_handler_writes_plain_lines():
    stream = io.StringIO()
    logger = glog.configure(stream)
    try:
        logger.info("one")
        logger.info("two")
    finally:
        glog.configure()
    assert [line.split("] ", 1)[1] for line in stream.getvalue().split("\n")[:-1]] == ["one", "two"]
    assert "\r" not in stream.getvalue()


def test_a_log_line_erases_the_status_line_then_redraws_it():
    stream = io.StringIO()
    logger = glog.configure(stream)
    try:
        handler = glog.glog_handler()
        handler.set_status("status 1")
        logger.info("hello")
        handler.set_status("status 22")
        handler.clear_status()
    finally:
        glog.configure()
    text = stream.getvalue()
    erased_then_logged = r"status 1\r {8}\rI[^\n\r]*\] hello\n"
    redrawn_replaced_cleared = "status 1" + "\r" + " " * 8 + "\rstatus 22" + "\r" + " " * 9 + "\r"
    assert re.fullmatch(erased_then_logged + re.escape(redrawn_replaced_cleared), text), repr(text)
    assert glog.glog_handler() is not handler  # configure() replaced it
