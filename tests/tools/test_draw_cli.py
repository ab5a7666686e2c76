"""`caffelite draw_net`: pycaffe's python/draw_net.py from the command line."""

import shutil

import pytest
from PIL import Image

from caffelite_tools.main import main
from shared_data import PROJECT

LENET_TRAIN_TEST = PROJECT / "models" / "lenet" / "lenet_train_test.prototxt"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (apt-get install graphviz)")


@needs_dot
def test_draw_net_writes_a_png(tmp_path, capsys):
    out = tmp_path / "lenet.png"
    assert main(["draw_net", str(LENET_TRAIN_TEST), str(out)]) == 0
    assert capsys.readouterr().out == f"Drawing net to {out}\n"
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100


@needs_dot
def test_draw_net_flags_choose_phase_direction_and_format(tmp_path):
    train, test = tmp_path / "train.svg", tmp_path / "test.svg"
    assert main(["draw_net", str(LENET_TRAIN_TEST), str(train), "--phase", "TRAIN", "-rankdir", "TB",
                 "--display_lrm"]) == 0
    assert main(["draw_net", str(LENET_TRAIN_TEST), str(test), "--phase=TEST"]) == 0
    train_svg, test_svg = train.read_text(), test.read_text()
    assert "accuracy" in test_svg and "accuracy" not in train_svg
    assert "lr mult: 1.0, 2.0" in train_svg and "lr mult" not in test_svg
    assert "conv1 (Convolution)" in train_svg.replace("&#160;", " ")  # TB joins label parts with spaces


def test_draw_net_raw_is_dot_source(tmp_path):
    out = tmp_path / "lenet.raw"
    assert main(["draw_net", str(LENET_TRAIN_TEST), str(out), "--phase", "TEST"]) == 0
    text = out.read_text()
    assert text.startswith("digraph LeNet") and "accuracy" in text


def test_draw_net_errors_are_one_line(tmp_path, monkeypatch, capsys):
    assert main(["draw_net", str(tmp_path / "absent.prototxt"), str(tmp_path / "x.png")]) == 1
    assert "caffelite draw_net: error:" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on the PATH
    assert main(["draw_net", str(LENET_TRAIN_TEST), str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("caffelite draw_net: error:") and "apt-get install graphviz" in err
    assert "Traceback" not in err and not (tmp_path / "x.png").exists()


def test_draw_net_rejects_an_unknown_phase(capsys):
    with pytest.raises(SystemExit):
        main(["draw_net", str(LENET_TRAIN_TEST), "x.png", "--phase", "VAL"])
    assert "invalid choice: 'VAL'" in capsys.readouterr().err
