"""`caffelite parse_log` and `caffelite plot_log`: Caffe's log tools from the command line, on a real training log."""

import pytest
from PIL import Image

from caffelite_tools.main import main
from logtools_helpers import write_training_log


@pytest.fixture(scope="module")
def training_log(tmp_path_factory):
    return write_training_log(tmp_path_factory.mktemp("log_cli"), name="tiny.log")


def test_parse_log_writes_both_tables(training_log, tmp_path, capsys):
    assert main(["parse_log", str(training_log), str(tmp_path), "--verbose"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"Wrote {tmp_path}/tiny.log.train", f"Wrote {tmp_path}/tiny.log.test",
    ]
    train = (tmp_path / "tiny.log.train").read_text().splitlines()
    test = (tmp_path / "tiny.log.test").read_text().splitlines()
    assert train[0] == "NumIters,Seconds,LearningRate,loss" and len(train) == 5
    assert test[0] == "NumIters,Seconds,LearningRate,acc,loss" and len(test) == 4
    assert [line.split(",")[0] for line in test[1:]] == ["0.0", "10.0", "20.0"]


def test_parse_log_delimiter_gflags_spelling(training_log, tmp_path, capsys):
    assert main(["parse_log", str(training_log), str(tmp_path), "-delimiter", "\\t"]) == 0
    assert capsys.readouterr().out == ""  # quiet without --verbose
    assert (tmp_path / "tiny.log.test").read_text().splitlines()[0] == "NumIters\tSeconds\tLearningRate\tacc\tloss"


def test_parse_log_errors_are_one_line(training_log, tmp_path, capsys):
    assert main(["parse_log", str(training_log), str(tmp_path / "absent")]) == 1
    assert "caffelite parse_log: error:" in capsys.readouterr().err
    not_a_log = tmp_path / "notes.txt"
    not_a_log.write_text("hello\n")
    assert main(["parse_log", str(not_a_log), str(tmp_path)]) == 1
    assert "no 'Solving' line" in capsys.readouterr().err


@pytest.mark.parametrize("chart_type", [0, 7])
def test_plot_log_writes_a_png(training_log, tmp_path, chart_type):
    out = tmp_path / "curves.png"
    assert main(["plot_log", str(chart_type), str(out), str(training_log), str(training_log)]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 150


def test_plot_log_help_lists_the_chart_types(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["plot_log", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "0: Test accuracy  vs. Iters" in text and "7: Train loss  vs. Seconds" in text


def test_plot_log_refuses_unknown_chart_types_and_non_png(training_log, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["plot_log", "8", str(tmp_path / "c.png"), str(training_log)])
    assert exit_.value.code == 2 and "chart_type" in capsys.readouterr().err
    assert main(["plot_log", "0", str(tmp_path / "c.svg"), str(training_log)]) == 1
    assert ".png" in capsys.readouterr().err
